// The generated TypeScript declarations type-check a usage file under --strict.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { HERE, PKG_NODE } from "./helpers.mjs";

const tsc = path.join(HERE, "node_modules", "typescript", "bin", "tsc");

test("TypeScript declarations cover the API (tsc --strict)", { skip: !fs.existsSync(tsc) && "typescript not installed (npm ci)" }, () => {
  assert.ok(fs.existsSync(PKG_NODE.replace(/\.js$/, ".d.ts")), "pkg/node/*.d.ts missing: run build.sh");
  for (const target of ["node", "web"]) {
    const usage = fs.readFileSync(path.join(HERE, "types", "usage.ts"), "utf8")
      .replace("../../pkg/node/", `../../pkg/${target}/`);
    const file = path.join(HERE, "types", `.usage-${target}.ts`);
    fs.writeFileSync(file, usage);
    try {
      const r = spawnSync(process.execPath, [tsc, "--noEmit", "--strict", "--target", "es2022", "--module", "es2022",
        "--moduleResolution", "bundler", "--lib", "esnext,dom", file], { encoding: "utf8" });
      assert.equal(r.status, 0, `tsc failed for the ${target} build:\n${r.stdout}${r.stderr}`);
    } finally {
      fs.rmSync(file, { force: true });
    }
  }
});
