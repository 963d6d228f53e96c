// Compiled with `tsc --noEmit --strict` by types.test.mjs: checks that the
// generated declarations type everything that crosses the boundary.
import {
  check, checkAndCompile, compile, completions, format, version,
  type Diagnostic, type Outcome, type RulesError, type Completion, type Effect,
} from "../../pkg/node/loyalty_rules_wasm";

const source = 'rule "Café €5 bonus"\n  on purchase\n  award 5 points\n';
const v: string = version();

const diags: Diagnostic[] = check(source);
for (const d of diags) {
  const sev: "error" | "warning" = d.severity;
  const span: [number, number, number, number] = [d.from, d.to, d.start, d.end];
  const pos: [number, number, number, number] = [d.line, d.column, d.end_line, d.end_column];
  const hint: string | null = d.hint;
  const text: string = d.message;
  void [sev, span, pos, hint, text];
}
// @ts-expect-error a diagnostic's message is not a number (the types are not `any`)
const wrong: number = diags[0].message;

const f = format(source);
if (f.ok) {
  const formatted: string = f.formatted;
  void formatted;
} else {
  const e: RulesError = f.error;
  const first: Diagnostic | undefined = e.diagnostics[0];
  void first;
}

const items: Completion[] = completions(source, 3);
const labels: string[] = items.map((c) => c.label);

const c = compile(source);
if (c.ok) {
  const res = c.program.explain({ type: "purchase", id: "o1", customer: "c1", time: "2026-11-24T10:00:00Z", amount: "120.00" }, '{"id": "c1"}');
  if (res.ok) {
    const o: Outcome = res.outcome;
    const points: string = o.points;
    for (const e of o.effects as Effect[]) {
      if (e.effect === "award") {
        const p: string = e.points;
        void p;
      }
    }
    for (const x of o.explanation ?? []) {
      const r: [string, boolean, number, number] = [x.rule, x.fired, x.from, x.to];
      void r;
    }
    void points;
  } else {
    const field: string | null | undefined = res.error.field;
    void field;
  }
  const res2 = c.program.evaluate("{}", {});
  void res2;
  c.program.free();
  // @ts-expect-error evaluate needs an event and a customer
  c.program.evaluate();
} else {
  const kind: string = c.error.kind;
  void kind;
}
void [v, wrong, labels];

const cc = checkAndCompile(source);
const ccDiags: Diagnostic[] = cc.diagnostics;
if (cc.program !== null) {
  const m = cc.program.matchingRules('{"type": "purchase"}', '{"id": "c1"}');
  if (m.ok) {
    const names: string[] = m.rules;
    void names;
  }
  const r = cc.program.evaluate('{"type": "purchase"}', '{"id": "c1"}');
  if (!r.ok) {
    const e: RulesError = r.error;
    void e;
  }
  cc.program.free();
}
// @ts-expect-error the program may be null
cc.program.free();
void ccDiags;
