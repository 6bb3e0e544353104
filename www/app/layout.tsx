import type { Metadata } from "next";
import "react-json-view-lite/dist/index.css";
import "@xterm/xterm/css/xterm.css";
import "./globals.css";

export const metadata: Metadata = {
  title: "devrelay dashboard",
  description: "Watch devrelay SDK clients live: threads, registry and AG-UI events",
};

export default function RootLayout({ children }: { children: React.ReactNode }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
