"use client";
// The views of the dashboard, as links that keep the page's relay (`?relay=`): Sessions (the client view),
// Live (every channel's messages, the relay's KPIs) and Agents (terminals, commands, permission prompts).

import Link from "next/link";
import "./TopNav.css";

export type View = "sessions" | "live" | "agents";

export function TopNav({ current, relayParam }: { current: View; relayParam: string | null }) {
  const query = relayParam ? `?relay=${encodeURIComponent(relayParam)}` : "";
  const links: { view: View; href: string; label: string }[] = [
    { view: "sessions", href: `/${query}`, label: "Sessions" },
    { view: "live", href: `/live${query}`, label: "Live" },
    { view: "agents", href: `/agents${query}`, label: "Agents" },
  ];
  return (
    <nav className="topnav" aria-label="Views">
      {links.map((l) => (
        <Link
          key={l.view}
          href={l.href}
          className="topnav-link"
          aria-current={l.view === current ? "page" : undefined}
          data-testid={`nav-${l.view}`}
        >
          {l.label}
        </Link>
      ))}
    </nav>
  );
}
