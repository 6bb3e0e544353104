import { Suspense } from "react";
import { LiveView } from "@/components/live/LiveView";
import "./live.css";

// Static page (exported as live.html; the relay serves it at /live). Suspense: the view reads ?relay= and ?buffer=.
export default function LivePage() {
  return (
    <Suspense fallback={<div className="boot">Loading devrelay…</div>}>
      <LiveView />
    </Suspense>
  );
}
