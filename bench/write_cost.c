// What a TCP write of WebSocket frames costs the writing thread on loopback: the frames (a 4-byte header and a
// 600-byte payload each, K per call) as an iovec array (`writev`, mode 0) or copied into one buffer first and
// sent with a plain `write` (mode 1), the peer draining on another thread; prints the writer thread's CPU time
// per frame (user + system, getrusage RUSAGE_THREAD, the loopback receive's softirq included as the relay's
// is). Behind `outbox.rs`'s gathered writes (BENCHMARKS.md, "Gathered writes").
//   cc -O2 -o /tmp/write_cost bench/write_cost.c -lpthread
//   for k in 1 8 55; do for m in 0 1; do /tmp/write_cost $m $((300000 / k)) $k; done; done
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
static void *drain(void *a){ int fd=(int)(long)a; static char buf[1<<20]; while(read(fd,buf,sizeof buf)>0); return 0;}
static double cpu(){ struct rusage r; getrusage(RUSAGE_THREAD,&r); return r.ru_utime.tv_sec+r.ru_utime.tv_usec/1e6+r.ru_stime.tv_sec+r.ru_stime.tv_usec/1e6;}
int main(int argc,char**argv){
  int mode=atoi(argv[1]); int n=atoi(argv[2]); int k=atoi(argv[3]);
  int lfd=socket(AF_INET,SOCK_STREAM,0); struct sockaddr_in a={.sin_family=AF_INET,.sin_addr.s_addr=htonl(0x7f000001)};
  bind(lfd,(void*)&a,sizeof a); listen(lfd,16); socklen_t l=sizeof a; getsockname(lfd,(void*)&a,&l);
  int c=socket(AF_INET,SOCK_STREAM,0); connect(c,(void*)&a,sizeof a); int s=accept(lfd,0,0);
  int one=1; setsockopt(s,IPPROTO_TCP,TCP_NODELAY,&one,sizeof one);
  pthread_t t; pthread_create(&t,0,drain,(void*)(long)c);
  char hdr[4]={0x81,126,2,88}; char *bodies[64]; for(int i=0;i<64;i++){bodies[i]=malloc(600); memset(bodies[i],'x',600);}
  static char scratch[1<<16];
  struct iovec v[128];
  double t0=cpu(); long total=0;
  for(int i=0;i<n;i++){
    if(mode==0){ for(int j=0;j<k;j++){v[2*j].iov_base=hdr; v[2*j].iov_len=4; v[2*j+1].iov_base=bodies[j]; v[2*j+1].iov_len=600;} total+=writev(s,v,2*k);} 
    else { size_t off=0; for(int j=0;j<k;j++){memcpy(scratch+off,hdr,4); memcpy(scratch+off+4,bodies[j],600); off+=604;} total+=write(s,scratch,off);} 
  }
  double t1=cpu();
  printf("mode %d k %d: %.3f us cpu per frame (%ld bytes)\n",mode,k,(t1-t0)/n/k*1e6,total);
  return 0;
}
