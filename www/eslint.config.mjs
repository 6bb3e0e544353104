// ESLint for the dashboard: Next.js's own flat configs (core web vitals + TypeScript, which bring the React,
// React Hooks, jsx-a11y, import and @next/next rules). scripts/test.sh runs it with --max-warnings 0.
import { defineConfig, globalIgnores } from "eslint/config";
import nextVitals from "eslint-config-next/core-web-vitals";
import nextTs from "eslint-config-next/typescript";

export default defineConfig([
  ...nextVitals,
  ...nextTs,
  // Build output and generated files.
  globalIgnores([".next/**", "out/**", "next-env.d.ts"]),
]);
