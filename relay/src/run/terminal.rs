//! The program of `devrelay run` under a pseudo-terminal (portable-pty): its output as byte chunks in the order
//! it wrote them (colours and cursor movement intact, stdout and stderr interleaved as a terminal shows them),
//! keystrokes and resizes into it, its exit status, and signals to its process group.
//!
//! The PTY's reads and writes are blocking: each has a thread of its own, talking to the async side over
//! bounded channels. The child is a session leader (portable-pty `setsid`s it), so its process group has its
//! pid, and SIGTERM / SIGKILL to that group reach whatever it started.

use std::io::{Read, Write};

use anyhow::Context;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use portable_pty::{native_pty_system, CommandBuilder, MasterPty, PtySize};
use tokio::sync::{mpsc, oneshot};

/// Bytes read from the PTY per chunk (a read returns what is there, up to this).
pub const READ_CHUNK: usize = 32 << 10;
/// Chunks read but not yet published: the reader waits beyond it (and so does the program, on a full PTY).
const OUTPUT_CHUNKS: usize = 64;

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl Exit {
    /// The exit code `devrelay run` itself ends with: the program's, or 128 + the signal.
    pub fn process_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 1,
        }
    }
}

/// A running program under a PTY.
pub struct Terminal {
    master: Box<dyn MasterPty + Send>,
    input: std::sync::mpsc::SyncSender<Vec<u8>>,
    pub pid: u32,
}

/// What a running program produces: its output chunks (closed when the PTY has nothing more: the program and
/// everything holding its terminal ended) and its exit.
#[derive(Debug)]
pub struct Produced {
    pub output: mpsc::Receiver<Vec<u8>>,
    pub exited: oneshot::Receiver<Exit>,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Terminal {
    /// Starts `program` with `args` under a `cols` × `rows` terminal in the current directory.
    pub fn spawn(
        program: &str,
        args: &[String],
        cols: u16,
        rows: u16,
    ) -> anyhow::Result<(Terminal, Produced)> {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .context("opening a pseudo-terminal")?;
        let mut cmd = CommandBuilder::new(program);
        cmd.args(args);
        if let Ok(dir) = std::env::current_dir() {
            cmd.cwd(dir);
        }
        if std::env::var_os("TERM").is_none_or(|t| t == "dumb") {
            cmd.env("TERM", "xterm-256color");
        }
        let child = pty
            .slave
            .spawn_command(cmd)
            .with_context(|| format!("cannot run {program}"))?;
        // The program holds the terminal's other end now; ours would keep it open after the program ends.
        drop(pty.slave);
        let pid = child
            .process_id()
            .context("the program has no process id")?;
        // Reaped by waitpid below (which gives the signal number, not only its name).
        drop(child);
        let mut reader = pty.master.try_clone_reader().context("reading the PTY")?;
        let mut writer = pty.master.take_writer().context("writing the PTY")?;

        let (out_tx, output) = mpsc::channel(OUTPUT_CHUNKS);
        std::thread::Builder::new()
            .name("devrelay-pty-read".into())
            .spawn(move || {
                let mut buf = vec![0u8; READ_CHUNK];
                loop {
                    match reader.read(&mut buf) {
                        // EIO on Linux once every holder of the terminal's other end is gone.
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if out_tx.blocking_send(buf[..n].to_vec()).is_err() {
                                break;
                            }
                        }
                    }
                }
            })
            .context("starting the PTY reader")?;

        let (in_tx, in_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(OUTPUT_CHUNKS);
        std::thread::Builder::new()
            .name("devrelay-pty-write".into())
            .spawn(move || {
                for bytes in in_rx {
                    if writer
                        .write_all(&bytes)
                        .and_then(|()| writer.flush())
                        .is_err()
                    {
                        break;
                    }
                }
            })
            .context("starting the PTY writer")?;

        let (exit_tx, exited) = oneshot::channel();
        std::thread::Builder::new()
            .name("devrelay-pty-wait".into())
            .spawn(move || {
                let exit = loop {
                    match waitpid(Pid::from_raw(pid as i32), None) {
                        Ok(WaitStatus::Exited(_, code)) => {
                            break Exit {
                                code: Some(code),
                                signal: None,
                            }
                        }
                        Ok(WaitStatus::Signaled(_, sig, _)) => {
                            break Exit {
                                code: None,
                                signal: Some(sig as i32),
                            }
                        }
                        Ok(_) => continue,
                        Err(nix::errno::Errno::EINTR) => continue,
                        Err(_) => {
                            break Exit {
                                code: None,
                                signal: None,
                            }
                        }
                    }
                };
                let _ = exit_tx.send(exit);
            })
            .context("starting the PTY waiter")?;

        Ok((
            Terminal {
                master: pty.master,
                input: in_tx,
                pid,
            },
            Produced { output, exited },
        ))
    }

    /// Types `bytes` into the program's terminal (dropped if the program stopped reading and the queue is full).
    pub fn write(&self, bytes: Vec<u8>) {
        if self.input.try_send(bytes).is_err() {
            tracing::warn!("terminal input dropped: the program is not reading it");
        }
    }

    pub fn resize(&self, cols: u16, rows: u16) {
        let size = PtySize {
            rows,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        };
        if let Err(e) = self.master.resize(size) {
            tracing::warn!(error = %e, "terminal resize failed");
        }
    }

    /// Sends `signal` to the program's process group.
    pub fn signal(&self, signal: Signal) {
        let _ = killpg(Pid::from_raw(self.pid as i32), signal);
    }
}
