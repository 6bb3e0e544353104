import { Suspense } from "react";
import { AgentsView } from "@/components/AgentsView";

// Static page (exported as agents.html; the relay serves it at /agents). Suspense: the view reads ?agent= and
// ?relay=.
export default function AgentsPage() {
  return (
    <Suspense fallback={<div className="boot">Loading devrelay…</div>}>
      <AgentsView />
    </Suspense>
  );
}
