import { Suspense } from "react";
import { Dashboard } from "@/components/Dashboard";

// Static page; everything live happens in the browser. Suspense: the dashboard reads ?clientId= and ?relay=.
export default function Page() {
  return (
    <Suspense fallback={<div className="boot">Loading devrelay…</div>}>
      <Dashboard />
    </Suspense>
  );
}
