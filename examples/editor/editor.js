// Campaign editor for loyalty-rules programs.
//
// All rule logic (parsing, checking, formatting, completion, evaluation and
// explanation) runs in the Rust engine compiled to WebAssembly (./pkg, the web
// build of loyalty-rules-wasm). This file only draws: syntax colouring,
// squiggles, lists and tables.

import init, { check, checkAndCompile, compile, completions, format, version } from "./pkg/loyalty_rules_wasm.js";
import { PROGRAMS, CUSTOMERS, EVENTS } from "./samples.js";

const $ = (id) => document.getElementById(id);
const src = $("source");
const hl = $("highlight");
const gutter = $("gutter");
const problems = $("diagnostics");
const problemCount = $("problem-count");
const status = $("status");
const customerBox = $("customer");
const eventBox = $("event");
const preview = $("preview");
const pointsEl = $("points");
const effectsEl = $("effects");
const explanationEl = $("explanation");
const previewError = $("preview-error");
const timingEl = $("timing");
const popup = $("completions");

// Used only for colouring. Replaced by pkg/keywords.json, which build.sh
// extracts from grammar/loyalty.pest (the one definition of the syntax).
let KEYWORDS = new Set(
  ("and or not if when then else is in of award give grant deduct multiply set tag notify extend stop " +
   "priority exclusive best group active from to until rule on where has true false any all every no none " +
   "count sum min max points point bonus per for each between contains starts ends matches by as with since " +
   "program tiers rewards currency timezone customer event tier reward voucher coupon expiry kinds are have " +
   "whole decimals decimal rounded half up down even list processing anniversary year day weekday hour days months month")
    .split(" "));

let program = null;          // the compiled Program of the last error-free source
let programSource = null;    // its source text
let lastDiagnostics = [];
let lastResult = null;

// ------------------------------------------------------------------ helpers

const escapeHtml = (s) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// ------------------------------------------------------------------ colouring

const TOKEN_RES = [
  ["comment", /#[^\n]*/y],
  ["string", /"(?:[^"\\\n]|\\.)*"?/y],
  ["number", /[$€£]\d[\d,]*(?:\.\d+)?/y],
  ["number", /\d{4}-\d{2}-\d{2}(?![\w])/y],
  ["number", /\d{1,2}:\d{2}(?::\d{2})?(?![\w])/y],
  ["number", /\d[\d,]*(?:\.\d+)?%?/y],
  ["word", /[A-Za-z_][A-Za-z0-9_]*/y],
  ["op", /[<>!=]=?|[-+*/().,:[\]?]/y],
];

/** Token class per UTF-16 code unit (presentation only). */
function tokenClasses(text) {
  const cls = new Array(text.length).fill("");
  let i = 0;
  outer: while (i < text.length) {
    for (const [kind, re] of TOKEN_RES) {
      re.lastIndex = i;
      const m = re.exec(text);
      if (m && m[0].length) {
        let c = kind;
        if (kind === "word") {
          const prev = text[i - 1];
          if (prev === ".") c = "field";
          else c = KEYWORDS.has(m[0].toLowerCase()) ? "keyword" : "";
        }
        if (c) cls.fill("tok-" + c, i, i + m[0].length);
        i += m[0].length;
        continue outer;
      }
    }
    i += 1;
  }
  return cls;
}

/**
 * Draws the highlighted copy of the source under the textarea: token colours,
 * wavy underlines for diagnostics (UTF-16 `from`/`to` from the engine), and
 * each line's first message at its end.
 */
function renderHighlight(text, diags, caretAt = -1) {
  const n = text.length;
  const tok = tokenClasses(text);
  const sev = new Array(n).fill("");
  const diagIndex = new Array(n).fill(-1);
  const empties = new Map(); // position -> diagnostic index (zero-width at line end / EOF)
  const lineMsg = new Map(); // 0-based line -> diagnostic
  diags.forEach((d, k) => {
    let from = Math.max(0, Math.min(d.from, n));
    let to = Math.max(from, Math.min(d.to, n));
    if (to === from) {
      if (from < n && text[from] !== "\n") to = from + 1;
      else if (!empties.has(from)) empties.set(from, k);
    }
    for (let i = from; i < to; i++) {
      if (text[i] === "\n") continue;
      if (sev[i] !== "error") { sev[i] = d.severity; diagIndex[i] = k; }
    }
    const line = d.line - 1;
    const prev = lineMsg.get(line);
    if (!prev || (prev.severity !== "error" && d.severity === "error")) lineMsg.set(line, d);
  });

  const lines = [];
  let html = "";
  let line = 0;
  const endLine = () => {
    const d = lineMsg.get(line);
    if (d) html += `<span class="inline-msg ${d.severity}">${escapeHtml(d.message)}</span>`;
    lines.push(html);
    html = "";
  };
  let i = 0;
  while (i <= n) {
    if (i === caretAt) html += '<span id="caret-marker"></span>';
    if (empties.has(i)) {
      const k = empties.get(i);
      const d = diags[k];
      html += `<span class="diag empty ${d.severity}" data-diag="${k}" data-line="${d.line}" data-column="${d.column}"></span>`;
    }
    if (i === n) break;
    if (text[i] === "\n") { endLine(); line++; i++; continue; }
    let j = i + 1;
    while (j < n && text[j] !== "\n" && tok[j] === tok[i] && sev[j] === sev[i] &&
           diagIndex[j] === diagIndex[i] && j !== caretAt && !empties.has(j)) j++;
    const chunk = escapeHtml(text.slice(i, j));
    let piece = tok[i] ? `<span class="${tok[i]}">${chunk}</span>` : chunk;
    if (sev[i]) {
      const d = diags[diagIndex[i]];
      piece = `<span class="diag ${sev[i]}" data-diag="${diagIndex[i]}" data-line="${d.line}" data-column="${d.column}">${piece}</span>`;
    }
    html += piece;
    i = j;
  }
  endLine();
  patchLines(lines);
}

// One <div> per line; only lines whose HTML changed are touched, so a
// keystroke re-lays out one line, not the whole program.
let shownLines = [];
function patchLines(lines) {
  const old = shownLines;
  let pre = 0;
  while (pre < old.length && pre < lines.length && old[pre] === lines[pre]) pre++;
  let suf = 0;
  while (suf < old.length - pre && suf < lines.length - pre &&
         old[old.length - 1 - suf] === lines[lines.length - 1 - suf]) suf++;
  const removeCount = old.length - pre - suf;
  const insert = lines.slice(pre, lines.length - suf);
  const kids = hl.children;
  // reuse the existing divs in the changed range, then add or remove the difference
  const reuse = Math.min(removeCount, insert.length);
  for (let k = 0; k < reuse; k++) kids[pre + k].innerHTML = insert[k];
  for (let k = reuse; k < removeCount; k++) kids[pre + reuse].remove();
  if (insert.length > reuse) {
    const frag = document.createDocumentFragment();
    for (let k = reuse; k < insert.length; k++) {
      const div = document.createElement("div");
      div.innerHTML = insert[k];
      frag.append(div);
    }
    hl.insertBefore(frag, kids[pre + reuse] ?? null);
  }
  shownLines = lines;
}

function renderGutter(text, diags) {
  const lines = text.split("\n").length;
  const marks = new Map();
  for (const d of diags) {
    const prev = marks.get(d.line);
    if (!prev || d.severity === "error") marks.set(d.line, d);
  }
  let html = "";
  for (let l = 1; l <= lines; l++) {
    const d = marks.get(l);
    html += d
      ? `<div class="has-${d.severity}" title="${escapeHtml(d.message)}">${l}</div>`
      : `<div>${l}</div>`;
  }
  html += "<div></div>";
  if (html !== shownGutter) {
    gutter.innerHTML = html;
    shownGutter = html;
  }
}
let shownGutter = "";

function syncScroll() {
  hl.scrollTop = src.scrollTop;
  hl.scrollLeft = src.scrollLeft;
  gutter.scrollTop = src.scrollTop;
}

let shownProblems = null;
function renderProblems(diags) {
  const key = JSON.stringify(diags);
  if (key === shownProblems) return;
  shownProblems = key;
  problems.replaceChildren();
  const errors = diags.filter((d) => d.severity === "error").length;
  problemCount.textContent = String(diags.length);
  problemCount.classList.toggle("has-errors", errors > 0);
  if (!diags.length) {
    problems.append(el("li", { class: "none" }, "No problems."));
    return;
  }
  for (const d of diags) {
    const li = el("li", { class: d.severity, "data-line": d.line, "data-column": d.column },
      el("span", { class: "sev" }, d.severity),
      el("span", { class: "pos" }, `${d.line}:${d.column}`),
      el("span", { class: "msg" }, d.message));
    if (d.hint) li.append(el("span", { class: "hint" }, `– ${d.hint}`));
    li.addEventListener("click", () => selectRange(d.from, d.to));
    problems.append(li);
  }
}

function selectRange(from, to) {
  src.focus();
  src.setSelectionRange(from, Math.max(from, to));
  // bring the line into view
  const line = src.value.slice(0, from).split("\n").length - 1;
  const lh = parseFloat(getComputedStyle(src).lineHeight) || 21;
  const y = line * lh;
  if (y < src.scrollTop || y > src.scrollTop + src.clientHeight - 2 * lh) src.scrollTop = Math.max(0, y - src.clientHeight / 3);
  syncScroll();
}

// ------------------------------------------------------------------ preview

function describeEffect(e) {
  switch (e.effect) {
    case "award": return `${e.points} ${e.kind && e.kind !== "points" ? e.kind + " " : ""}points`;
    case "multiply": return `×${e.factor} (${e.points} points)`;
    case "reward": return `reward “${e.reward}”`;
    case "tier": return `tier ${e.from ?? "none"} → ${e.to}`;
    case "tag": return `tag “${e.tag}”`;
    case "notify": return `notify “${e.message}”`;
    case "set_attribute": return `${e.attribute} = ${JSON.stringify(e.value)}`;
    case "extend_expiry": return `extend expiry by ${e.months} months`;
    default: {
      const { effect, rule, customer, ...rest } = e;
      return JSON.stringify(rest);
    }
  }
}

let shownOutcome = null;
function renderOutcome(outcome) {
  const key = JSON.stringify(outcome);
  if (key === shownOutcome) return;
  shownOutcome = key;
  pointsEl.textContent = outcome.points;
  effectsEl.replaceChildren();
  if (!outcome.effects.length) effectsEl.append(el("li", { class: "empty-note" }, "No effects."));
  for (const e of outcome.effects) {
    effectsEl.append(el("li", { "data-effect": e.effect },
      el("span", { class: "tag" }, e.effect.replace("_", " ")),
      describeEffect(e), " ",
      el("span", { class: "rule" }, `— ${e.rule}`)));
  }
  explanationEl.replaceChildren();
  for (const x of outcome.explanation ?? []) {
    const details = el("td");
    if (!x.fired) {
      if (x.reason) details.append(x.reason.replace(/_/g, " "));
      if (x.condition) details.append(": ", el("code", {}, x.condition));
      for (const v of x.values ?? []) details.append(el("div", {}, el("code", {}, v.expr), " = ", el("code", {}, v.value)));
    } else if (x.values?.length) {
      for (const v of x.values) details.append(el("div", {}, el("code", {}, v.expr), " = ", el("code", {}, v.value)));
    }
    const tr = el("tr", { "data-rule": x.rule },
      el("td", {}, x.rule),
      el("td", { class: x.fired ? "fired-yes" : "fired-no" }, x.fired ? "✓ fired" : "✗ no"),
      details);
    tr.addEventListener("click", () => selectRange(x.from, x.to));
    explanationEl.append(tr);
  }
}

function showPreviewError(message) {
  previewError.hidden = !message;
  previewError.textContent = message || "";
}

/** Runs the engine on the current program, customer and event. */
function evaluateNow() {
  customerBox.classList.remove("invalid");
  eventBox.classList.remove("invalid");
  if (!program) {
    preview.classList.add("stale");
    showPreviewError("Fix the errors in the rules to see a preview.");
    return null;
  }
  const res = program.explain(eventBox.value, customerBox.value);
  lastResult = res;
  if (res.ok) {
    renderOutcome(res.outcome);
    const stale = programSource !== src.value;
    preview.classList.toggle("stale", stale);
    showPreviewError(stale ? "Showing the last version without errors." : "");
  } else {
    preview.classList.add("stale");
    const k = res.error.kind;
    const box = k === "invalid_customer" ? customerBox : eventBox;
    box.classList.add("invalid");
    const where = res.error.field ? ` (field ${res.error.field})` : "";
    showPreviewError(`${k === "invalid_customer" ? "Customer" : k === "json" ? "JSON" : "Event"}: ${res.error.message}${where}`);
  }
  return res;
}

// ------------------------------------------------------------------ update loop

let checkedSource = null; // the source text lastDiagnostics belong to

/**
 * One engine call per change of the rules: checkAndCompile parses the source
 * once and returns the diagnostics and, when there are no errors, the
 * compiled program. A change of the sample customer or event only
 * re-evaluates the program already compiled.
 */
function update() {
  const t0 = performance.now();
  const text = src.value;
  const sourceChanged = text !== checkedSource;
  if (sourceChanged) {
    const res = checkAndCompile(text);
    lastDiagnostics = res.diagnostics;
    checkedSource = text;
    if (res.program) {
      program?.free();
      program = res.program;
      programSource = text;
    }
  }
  const diags = lastDiagnostics;
  const errors = diags.filter((d) => d.severity === "error").length;
  const t1 = performance.now();
  evaluateNow();
  const t2 = performance.now();
  if (sourceChanged) {
    renderHighlight(text, diags);
    renderGutter(text, diags);
    renderProblems(diags);
    requestAnimationFrame(syncScroll);
  }
  const t3 = performance.now();
  status.className = "status " + (errors ? "error" : "ok");
  const warnings = diags.length - errors;
  status.textContent = errors
    ? `${errors} error${errors > 1 ? "s" : ""}${warnings ? `, ${warnings} warning${warnings > 1 ? "s" : ""}` : ""}`
    : warnings ? `ok, ${warnings} warning${warnings > 1 ? "s" : ""}` : "ok";
  timingEl.textContent = `engine ${(t2 - t0).toFixed(2)} ms (check+compile ${(t1 - t0).toFixed(2)}) · render ${(t3 - t2).toFixed(2)} ms`;
}

// ------------------------------------------------------------------ completion

let items = [];
let active = 0;
let wordStart = 0;

function openCompletions() {
  const text = src.value;
  const pos = src.selectionStart;
  wordStart = pos;
  while (wordStart > 0 && /[A-Za-z0-9_]/.test(text[wordStart - 1])) wordStart--;
  const prefix = text.slice(wordStart, pos).toLowerCase();
  const all = completions(text, pos);
  const seen = new Set();
  items = all.filter((c) => c.label.toLowerCase().startsWith(prefix) && !seen.has(c.kind + c.label) && seen.add(c.kind + c.label));
  if (!items.length) return closeCompletions();
  active = 0;
  renderHighlight(text, lastDiagnostics, pos);
  const marker = document.getElementById("caret-marker");
  const box = src.parentElement.getBoundingClientRect();
  const r = marker.getBoundingClientRect();
  popup.style.left = `${Math.max(0, r.left - box.left)}px`;
  popup.style.top = `${r.bottom - box.top + 2}px`;
  drawCompletions();
  popup.hidden = false;
}

function drawCompletions() {
  popup.replaceChildren(...items.map((c, k) => {
    const li = el("li", { class: k === active ? "active" : "", "data-kind": c.kind },
      el("span", { class: "label" }, c.label),
      el("span", { class: "kind" }, c.detail ? `${c.kind} · ${c.detail}` : c.kind));
    li.addEventListener("mousedown", (ev) => { ev.preventDefault(); active = k; acceptCompletion(); });
    return li;
  }));
  popup.children[active]?.scrollIntoView({ block: "nearest" });
}

function closeCompletions() {
  if (popup.hidden) return;
  popup.hidden = true;
  items = [];
  renderHighlight(src.value, lastDiagnostics); // drop the caret marker
}

function acceptCompletion() {
  const c = items[active];
  if (!c) return;
  const pos = src.selectionStart;
  src.setRangeText(c.label, wordStart, pos, "end");
  closeCompletions();
  update();
}

// ------------------------------------------------------------------ wiring

function fillSelect(select, samples) {
  select.replaceChildren(...samples.map((s, k) => el("option", { value: String(k) }, s.name)));
}

function loadSample(kind, k) {
  if (kind === "program") src.value = PROGRAMS[k].source;
  if (kind === "customer") customerBox.value = JSON.stringify(CUSTOMERS[k].value, null, 2);
  if (kind === "event") eventBox.value = JSON.stringify(EVENTS[k].value, null, 2);
  update();
}

/** Runs `once` 10 times to warm up, then `iterations` times timed. */
function timeIt(once, iterations, summary) {
  for (let k = 0; k < 10; k++) once();
  const times = [];
  let last;
  for (let k = 0; k < iterations; k++) {
    const t = performance.now();
    last = once();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return {
    iterations,
    meanMs: times.reduce((a, b) => a + b, 0) / times.length,
    medianMs: times[Math.floor(times.length / 2)],
    p95Ms: times[Math.floor(times.length * 0.95)],
    maxMs: times[times.length - 1],
    ...summary(last),
  };
}

async function main() {
  await init();
  try {
    const r = await fetch(new URL("./pkg/keywords.json", import.meta.url));
    if (r.ok) KEYWORDS = new Set((await r.json()).map((w) => w.toLowerCase()));
  } catch { /* keep the built-in list */ }

  fillSelect($("program-sample"), PROGRAMS);
  fillSelect($("customer-sample"), CUSTOMERS);
  fillSelect($("event-sample"), EVENTS);
  $("program-sample").addEventListener("change", (e) => loadSample("program", +e.target.value));
  $("customer-sample").addEventListener("change", (e) => loadSample("customer", +e.target.value));
  $("event-sample").addEventListener("change", (e) => loadSample("event", +e.target.value));

  src.value = PROGRAMS[0].source;
  customerBox.value = JSON.stringify(CUSTOMERS[0].value, null, 2);
  eventBox.value = JSON.stringify(EVENTS[0].value, null, 2);

  src.addEventListener("input", () => { update(); if (!popup.hidden) openCompletions(); });
  src.addEventListener("scroll", syncScroll);
  src.addEventListener("blur", () => setTimeout(closeCompletions, 100));
  src.addEventListener("keydown", (e) => {
    if (!popup.hidden) {
      if (e.key === "ArrowDown") { active = (active + 1) % items.length; drawCompletions(); e.preventDefault(); return; }
      if (e.key === "ArrowUp") { active = (active + items.length - 1) % items.length; drawCompletions(); e.preventDefault(); return; }
      if (e.key === "Enter" || e.key === "Tab") { acceptCompletion(); e.preventDefault(); return; }
      if (e.key === "Escape") { closeCompletions(); e.preventDefault(); return; }
    }
    if (e.key === " " && (e.ctrlKey || e.metaKey)) { openCompletions(); e.preventDefault(); return; }
    if (e.key === "Tab" && !e.shiftKey) { src.setRangeText("  ", src.selectionStart, src.selectionEnd, "end"); update(); e.preventDefault(); }
  });
  src.addEventListener("click", closeCompletions);
  customerBox.addEventListener("input", update);
  eventBox.addEventListener("input", update);
  $("format-btn").addEventListener("click", () => {
    const r = format(src.value);
    if (r.ok) { src.value = r.formatted; update(); }
    else { status.className = "status error"; status.textContent = "fix the errors before formatting"; }
  });

  update();
  status.title = `loyalty-rules-wasm ${version()}`;

  // Hooks for tests and benchmarks.
  window.loyaltyEditor = {
    version: version(),
    get diagnostics() { return lastDiagnostics; },
    get result() { return lastResult; },
    setProgram(text) { src.value = text; update(); },
    setEvent(value) { eventBox.value = typeof value === "string" ? value : JSON.stringify(value, null, 2); update(); },
    setCustomer(value) { customerBox.value = typeof value === "string" ? value : JSON.stringify(value, null, 2); update(); },
    /**
     * Per-keystroke engine work on `text`, as update() does it: one
     * checkAndCompile (diagnostics and program from one parse) + explain.
     */
    measureEngine(text, iterations = 100) {
      const ev = eventBox.value, cu = customerBox.value;
      const once = () => {
        const c = checkAndCompile(text);
        if (!c.program) throw new Error("program does not compile: " + JSON.stringify(c.diagnostics[0]));
        const r = c.program.explain(ev, cu);
        c.program.free();
        return [c.diagnostics, r];
      };
      return timeIt(once, iterations, (last) => ({
        diagnostics: last[0].length,
        ok: last[1].ok,
        points: last[1].ok ? last[1].outcome.points : null,
      }));
    },
    /** The same work as two parses (check, then compile), as the page did before checkAndCompile: for comparison. */
    measureEngineTwoParses(text, iterations = 100) {
      const ev = eventBox.value, cu = customerBox.value;
      const once = () => {
        const d = check(text);
        const c = compile(text);
        if (!c.ok) throw new Error("program does not compile: " + c.error.message);
        const r = c.program.explain(ev, cu);
        c.program.free();
        return [d, r];
      };
      return timeIt(once, iterations, (last) => ({ diagnostics: last[0].length, ok: last[1].ok }));
    },
    /**
     * Typing a new rule at the end of `text`, one character per keystroke:
     * the engine work of every keystroke (checkAndCompile, and explain when
     * the text compiles), half-typed words and all. `errors` counts the
     * keystrokes whose text had a diagnostic.
     */
    measureTyping(text, typed) {
      const ev = eventBox.value, cu = customerBox.value;
      const times = [];
      let errors = 0;
      for (let k = 0; k <= typed.length; k++) {
        const t0 = performance.now();
        const c = checkAndCompile(text + typed.slice(0, k));
        if (c.program) { c.program.explain(ev, cu); c.program.free(); }
        times.push(performance.now() - t0);
        if (c.diagnostics.length > 0) errors += 1;
      }
      times.sort((a, b) => a - b);
      return {
        keystrokes: times.length,
        errors,
        meanMs: times.reduce((a, b) => a + b, 0) / times.length,
        medianMs: times[Math.floor(times.length / 2)],
        p95Ms: times[Math.floor(times.length * 0.95)],
        maxMs: times[times.length - 1],
      };
    },
    /** A change of the sample event or customer only: explain with the compiled program. */
    measureSampleChange(iterations = 100) {
      const ev = eventBox.value, cu = customerBox.value;
      return timeIt(() => program.explain(ev, cu), iterations, (last) => ({ ok: last.ok }));
    },
    /** The whole keystroke as the page does it (engine + drawing), averaged. */
    measureUpdate(iterations = 50) {
      const base = src.value;
      const times = [];
      for (let k = 0; k < iterations; k++) {
        src.value = base + (k % 2 ? " " : "");
        const t = performance.now();
        update();
        times.push(performance.now() - t);
      }
      src.value = base;
      update();
      times.sort((a, b) => a - b);
      return { iterations, meanMs: times.reduce((a, b) => a + b, 0) / times.length, medianMs: times[Math.floor(times.length / 2)] };
    },
  };
  document.body.dataset.ready = "true";
}

main().catch((e) => {
  status.className = "status error";
  status.textContent = "could not start the engine: " + e.message;
  console.error(e);
});
