// The playground's behaviour: it sends what the person typed to /decide and /draft and shows
// what comes back. It decides nothing itself. Every value goes into the page as text, never
// as HTML: attributes and rules are the callers' data.
"use strict";

const $ = (sel) => document.querySelector(sel);

// h builds an element; strings and numbers among the children become text nodes.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return el;
}

async function postJSON(url, body) {
  const resp = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  let data;
  try {
    data = await resp.json();
  } catch (e) {
    data = { error: "the answer is not JSON (" + resp.status + ")" };
  }
  return { status: resp.status, data };
}

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function setMode(m) {
  document.querySelector('input[name="mode"][value="' + m + '"]').checked = true;
  $("#as-form").hidden = m !== "form";
  $("#as-fields").hidden = m !== "fields";
}

// callback is the callback in the form as /decide and /draft take it, or null when the
// form is empty.
function callback() {
  if (mode() === "form") {
    const form = $("#form-body").value.trim();
    return form === "" ? null : { form };
  }
  const params = {};
  let any = false;
  for (const el of document.querySelectorAll("#as-fields [data-param]")) {
    const v = el.value.trim();
    if (v === "") continue;
    params[el.dataset.param] = v;
    if (v !== "{}") any = true;
  }
  return any ? { params } : null;
}

// withAt adds the time field to a callback, when both are given.
function withAt(cb) {
  const at = $("#callback-at").value.trim();
  if (cb && at !== "") cb.at = at;
  return cb;
}

// The words for where a decision's time came from (its at_from).
const atFrom = {
  at: "the time given",
  timestamp: "the callback's Timestamp",
  arrival: "now: the callback has no usable Timestamp",
};

function show(el, on) {
  el.hidden = !on;
  return el;
}

// diffView shows a line diff of two decisions' JSON, as reservist test prints it: each
// line starts "- ", "+ " or "  ".
function diffView(text, cls) {
  const lines = text.replace(/\n$/, "").split("\n");
  return h("pre", { class: "diff" + (cls ? " " + cls : "") }, lines.map((l) =>
    h("span", { class: l.startsWith("- ") ? "del" : l.startsWith("+ ") ? "add" : "ctx" }, l)));
}

function restTable(rest) {
  const rows = Object.keys(rest.params).sort().map((k) => {
    const v = rest.params[k];
    return h("tr", {}, h("td", {}, h("code", {}, k)), h("td", {}, h("code", {}, Array.isArray(v) ? v.join(", ") : String(v))));
  });
  return h("div", { class: "rest" },
    h("h4", {}, "REST parameters", rest.delay && rest.delay !== "0s" ? " (sent after " + rest.delay + ")" : ""),
    h("table", { class: "rest-params" }, h("tbody", {}, rows)));
}

// decisionView shows one engine decision: rule, exact answer, REST call, error, trace.
function decisionView(d, title) {
  const trace = h("ol", { class: "trace" }, d.trace.map((s) =>
    h("li", { class: "step " + s.result }, h("code", {}, s.rule), " ", h("span", { class: "result" }, s.result === "match" ? "matched" : s.result === "no" ? "no" : "error"),
      s.error ? h("span", { class: "step-error" }, ": " + s.error) : null)));
  return h("div", { class: "decision" },
    title ? h("h3", {}, title) : null,
    h("p", {}, "rule ", h("strong", { class: "decision-rule" }, d.rule), " → ",
      h("span", { class: "decision-instruction" }, d.instruction), d.via === "rest" ? " via REST" : ""),
    h("p", { class: "decision-at note" }, "at ", h("time", { datetime: d.at }, d.at), " (" + (atFrom[d.at_from] || d.at_from) + ")"),
    d.error ? h("p", { class: "bad decision-error" }, "on_error: ", d.error) : null,
    h("h4", {}, "Answer"),
    h("pre", { class: "decision-answer" }, d.response_text),
    d.rest ? restTable(d.rest) : null,
    h("h4", {}, "Trace"),
    d.trace.length ? trace : h("p", { class: "note" }, "no rule was tried"));
}

// loaded is the golden case the callback form was filled from, while it is what the form
// holds: the decision is compared with its golden file, and "save as case" names the file
// after it.
let loaded = null;

function setLoaded(c) {
  loaded = c;
  const note = $("#loaded-case");
  if (!c) {
    show(note, false);
    return;
  }
  note.replaceChildren("Loaded golden case ", h("code", {}, c.name), " (", h("code", {}, c.path), ")",
    c.golden ? "; deciding it compares the decision with its golden file." : "; it has no golden file" + (c.golden_error ? ": " + c.golden_error : "."));
  show(note, true);
}

async function decide() {
  const err = show($("#decide-error"), false);
  const out = $("#decision");
  const body = withAt(callback()) || { form: "" };
  if (loaded && loaded.golden) body.golden = loaded.golden;
  const { status, data } = await postJSON("/decide", body);
  if (status !== 200) {
    err.textContent = data.error;
    show(err, true);
    show(out, false);
    return;
  }
  const parts = [decisionView(data)];
  if (data.golden) {
    parts.unshift(data.golden.passed
      ? h("p", { class: "golden-check pass" }, "The decision matches the golden file of ", h("code", {}, loaded.name), ".")
      : h("div", { class: "golden-check fail" },
        h("p", {}, "The decision differs from the golden file of ", h("code", {}, loaded.name), " (- golden, + actual):"),
        diffView(data.golden.diff)));
  }
  parts.push(h("p", { class: "note" }, "revision " + data.revision.slice(0, 12)));
  out.replaceChildren(...parts);
  show($("#decision-empty"), false);
  show(out, true);
}

// saveCase downloads the callback as a .yaml case, as /case writes it.
async function saveCase() {
  const err = show($("#decide-error"), false);
  const cb = callback();
  if (!cb) {
    err.textContent = "There is no callback to save: fill in the form first.";
    show(err, true);
    return;
  }
  if (loaded) cb.name = loaded.name.split("/").pop();
  const { status, data } = await postJSON("/case", cb);
  if (status !== 200) {
    err.textContent = data.error;
    show(err, true);
    return;
  }
  const url = URL.createObjectURL(new Blob([data.yaml], { type: "application/yaml" }));
  const a = h("a", { href: url, download: data.file, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  const note = $("#save-note");
  note.replaceChildren("Saved ", h("code", { id: "saved-file" }, data.file),
    ": put it in your cases directory and run reservist test --update to write its golden file.");
  show(note, true);
}

// The draft editor: line numbers in a gutter that scrolls with the text, and markers on
// the lines diagnostics point at.
let marks = new Map(); // line → {kind, messages}

function renderGutter() {
  const ta = $("#draft-rules");
  const n = ta.value.split("\n").length;
  const lines = [];
  for (let i = 1; i <= n; i++) {
    const m = marks.get(i);
    const el = h("span", m ? { class: "mark " + m.kind, "data-line": String(i), title: m.messages.join("\n") } : { "data-line": String(i) }, String(i));
    if (m) el.addEventListener("click", () => jumpTo(i, 1));
    lines.push(el);
  }
  $("#draft-gutter").replaceChildren(...lines);
  $("#draft-gutter").scrollTop = ta.scrollTop;
}

function setMarks(diags, texts) {
  marks = new Map();
  diags.forEach((d, i) => {
    const m = marks.get(d.line) || { kind: "warning", messages: [] };
    if (!d.warning) m.kind = "error";
    m.messages.push(texts[i]);
    marks.set(d.line, m);
  });
  renderGutter();
}

// jumpTo selects line:col in the draft, where a diagnostic points, and scrolls it into view.
function jumpTo(line, col) {
  const ta = $("#draft-rules");
  const lines = ta.value.split("\n");
  let at = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) at += lines[i].length + 1;
  at += Math.max(0, col - 1);
  const end = at + Math.max(1, (lines[line - 1] || "").length - (col - 1));
  ta.focus();
  ta.setSelectionRange(at, end);
  const lineHeight = parseFloat(getComputedStyle(ta).lineHeight) || 18;
  ta.scrollTop = Math.max(0, (line - 3) * lineHeight);
  $("#draft-gutter").scrollTop = ta.scrollTop;
}

function diagnosticList(el, texts, diags) {
  el.replaceChildren(...texts.map((text, i) => {
    const d = diags[i];
    const li = h("li", { class: d.warning ? "warning" : "error" }, h("a", { href: "#draft-rules" }, text));
    li.firstChild.addEventListener("click", (ev) => {
      ev.preventDefault();
      jumpTo(d.line, d.col);
    });
    return li;
  }));
  return show(el, texts.length > 0);
}

function goldenCell(g) {
  if (!g) return h("div", { class: "golden-decision note" }, "not decided");
  const cell = h("div", { class: "golden-decision" },
    h("strong", {}, g.rule), " ",
    h("code", {}, JSON.stringify(g.response)));
  if (g.rest) cell.append(h("br"), h("small", {}, "REST " + (g.rest.params.Instruction || g.rest.params.ReservationStatus || "") + (g.rest.delay !== "0s" ? " after " + g.rest.delay : "")));
  return cell;
}

// caseRows are a case's rows in the draft's table: the two decisions and how the draft
// fares against the golden file (its diff folded), then, for a case the draft changes, the
// difference between the two decisions, shown open.
function caseRows(c) {
  const golden = c.golden === "pass" ? h("span", { class: "good" }, "pass")
    : h("details", {}, h("summary", { class: "bad" }, c.golden),
      c.golden_diff ? diffView(c.golden_diff, "golden-diff") : h("pre", {}, c.golden_error));
  const rows = [h("tr", { class: c.changed ? "changed case" : "case", "data-case": c.name },
    h("td", { class: "case-name" }, h("code", { title: c.path }, c.name), c.changed ? h("span", { class: "flag" }, " changed") : null),
    h("td", { class: "case-active" }, goldenCell(c.active)),
    h("td", { class: "case-draft" }, goldenCell(c.draft)),
    h("td", { class: "case-golden" }, golden))];
  if (c.changed) {
    rows.push(h("tr", { class: "changed diff-row", "data-case": c.name },
      h("td", { colspan: "4" }, h("p", { class: "note" }, "- active rules, + draft:"), diffView(c.diff, "case-diff"))));
  }
  return rows;
}

// filterCases hides the cases the draft decides as the active rules do, when asked to.
function filterCases() {
  const only = $("#changed-only").checked;
  let shown = 0, total = 0;
  for (const tr of document.querySelectorAll("#draft-cases tbody tr.case")) {
    total++;
    const on = !only || tr.classList.contains("changed");
    tr.hidden = !on;
    if (on) shown++;
  }
  $("#draft-cases-count").textContent = only ? shown + " of " + total + " cases shown" : total + " cases";
}

async function tryDraft() {
  const err = show($("#draft-error"), false);
  const errors = show($("#draft-errors"), false);
  const result = show($("#draft-result"), false);
  show($("#draft-empty"), false);
  const body = Object.assign({ rules: $("#draft-rules").value }, withAt(callback()) || {});
  const { status, data } = await postJSON("/draft", body);
  if (status === 422) {
    err.textContent = data.error;
    show(err, true);
    diagnosticList(errors, data.errors, data.diagnostics);
    setMarks(data.diagnostics, data.errors);
    return;
  }
  if (status !== 200) {
    err.textContent = data.error;
    show(err, true);
    return;
  }
  setMarks(data.diagnostics, data.warnings);

  const summary = [];
  summary.push("The draft is valid (revision " + data.revision.slice(0, 12) + ").");
  if (data.callback) {
    summary.push(data.callback.changed ? "It decides the callback differently." : "It decides the callback as the active rules do.");
  }
  const cases = data.cases;
  const box = show($("#draft-cases-box"), false);
  if (cases && cases.error) {
    summary.push(cases.error);
  } else if (cases) {
    summary.push(cases.changed === 0
      ? "It decides all " + cases.total + " golden cases as the active rules do."
      : cases.changed + " of " + cases.total + " golden cases would be decided differently (highlighted, with the difference).");
    if (cases.failing > 0) {
      summary.push(cases.failing + (cases.failing === 1 ? " fails its golden file" : " fail their golden files") +
        (cases.gate ? ", so --reload-cases would refuse this draft" : "") +
        ": when the change is meant, save it, run reservist test --update and review the golden files.");
    }
    const sorted = [...cases.results].sort((a, b) => (b.changed - a.changed));
    $("#draft-cases").tBodies[0].replaceChildren(...sorted.flatMap(caseRows));
    show(box, cases.total > 0);
    filterCases();
  } else {
    summary.push("There are no golden cases to try it against (serve --reload-cases DIR, or cases/ beside the rules file), so only the callback is compared.");
  }
  $("#draft-summary").textContent = summary.join(" ");
  diagnosticList($("#draft-warnings"), data.warnings, data.diagnostics);

  const cb = $("#draft-callback");
  if (data.callback) {
    const parts = [h("div", { class: "side-by-side" + (data.callback.changed ? " changed" : "") },
      decisionView(data.callback.active, "Active rules"),
      decisionView(data.callback.draft, "Draft"))];
    if (data.callback.changed) {
      parts.push(h("div", { class: "callback-diff" }, h("p", { class: "note" }, "- active rules, + draft:"), diffView(data.callback.diff)));
    }
    cb.replaceChildren(...parts);
  } else {
    cb.replaceChildren();
  }
  show(result, true);
}

async function refreshRecent() {
  const resp = await fetch("/recent");
  const data = await resp.json();
  const sel = $("#recent");
  const opts = [h("option", { value: "" }, data.callbacks.length ? "pick one…" : "none yet")];
  for (const c of data.callbacks) {
    const o = h("option", { value: String(c.id) }, c.received_at + " " + c.reservation_sid + " → " + c.rule);
    o.dataset.form = c.form;
    opts.push(o);
  }
  sel.replaceChildren(...opts);
}

function pickRecent() {
  const o = $("#recent").selectedOptions[0];
  if (!o || !o.dataset.form) return;
  $("#form-body").value = o.dataset.form;
  setMode("form");
  setLoaded(null);
}

// The golden cases, to load into the form; filled from /cases.
let goldenCases = [];

async function loadCases() {
  const sel = $("#case");
  const resp = await fetch("/cases");
  const data = await resp.json();
  goldenCases = data.cases || [];
  const opts = [h("option", { value: "" }, data.error ? data.error : goldenCases.length ? "pick one…" : "none found")];
  goldenCases.forEach((c, i) => {
    opts.push(h("option", { value: String(i), disabled: c.error ? true : null, title: c.error || c.path },
      c.name + (c.golden ? " → " + c.golden.rule : c.error ? " (does not parse)" : " (no golden file)")));
  });
  sel.replaceChildren(...opts);
  sel.dataset.loaded = "true"; // tests wait for this
}

function pickCase() {
  const c = goldenCases[Number($("#case").value)];
  if (!c || c.error) return;
  $("#form-body").value = c.form;
  fillFields();
  setMode(mode());
  setLoaded(c);
}

// fillFields copies a form body into the fields, so that picking a callback and then editing
// its attributes works.
function fillFields() {
  const q = new URLSearchParams($("#form-body").value.trim());
  for (const el of document.querySelectorAll("#as-fields [data-param]")) {
    let v = q.has(el.dataset.param) ? q.get(el.dataset.param) : (el.tagName === "TEXTAREA" ? "{}" : "");
    if (el.tagName === "TEXTAREA") {
      try { v = JSON.stringify(JSON.parse(v), null, 2); } catch (e) { /* shown as sent */ }
    }
    el.value = v;
  }
}

function start() {
  for (const r of document.querySelectorAll('input[name="mode"]')) {
    r.addEventListener("change", () => {
      if (mode() === "fields" && $("#form-body").value.trim() !== "") fillFields();
      setMode(mode());
    });
  }
  const fail = (sel) => (e) => { $(sel).textContent = String(e); show($(sel), true); };
  $("#decide").addEventListener("click", () => decide().catch(fail("#decide-error")));
  $("#save-case").addEventListener("click", () => saveCase().catch(fail("#decide-error")));
  $("#try-draft").addEventListener("click", () => tryDraft().catch(fail("#draft-error")));
  $("#changed-only").addEventListener("change", filterCases);
  // What the person types is no longer the loaded case.
  $("#form-body").addEventListener("input", () => setLoaded(null));
  for (const el of document.querySelectorAll("#as-fields [data-param]")) el.addEventListener("input", () => setLoaded(null));
  if ($("#recent")) {
    $("#recent").addEventListener("change", pickRecent);
    $("#recent-refresh").addEventListener("click", () => refreshRecent().catch(() => {}));
  }
  if ($("#case")) {
    $("#case").addEventListener("change", pickCase);
    loadCases().catch((e) => { $("#case").replaceChildren(h("option", { value: "" }, "cannot list the cases: " + e)); });
  }
  const ta = $("#draft-rules");
  ta.addEventListener("input", renderGutter);
  ta.addEventListener("scroll", () => { $("#draft-gutter").scrollTop = ta.scrollTop; });
  renderGutter();
  document.body.dataset.ready = "true"; // tests wait for this
}

start();
