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

async function decide() {
  const err = show($("#decide-error"), false);
  const out = $("#decision");
  const { status, data } = await postJSON("/decide", withAt(callback()) || { form: "" });
  if (status !== 200) {
    err.textContent = data.error;
    show(err, true);
    show(out, false);
    return;
  }
  out.replaceChildren(decisionView(data), h("p", { class: "note" }, "revision " + data.revision.slice(0, 12)));
  show(out, true);
}

// jumpTo selects line:col in the draft, where a diagnostic points.
function jumpTo(line, col) {
  const ta = $("#draft-rules");
  const lines = ta.value.split("\n");
  let at = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) at += lines[i].length + 1;
  at += Math.max(0, col - 1);
  const end = at + Math.max(1, (lines[line - 1] || "").length - (col - 1));
  ta.focus();
  ta.setSelectionRange(at, end);
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

function caseRow(c) {
  const golden = c.golden === "pass" ? h("span", { class: "good" }, "pass")
    : h("details", {}, h("summary", { class: "bad" }, c.golden), h("pre", {}, c.golden_diff || c.golden_error));
  return h("tr", { class: c.changed ? "changed" : null, "data-case": c.name },
    h("td", { class: "case-name" }, h("code", { title: c.path }, c.name), c.changed ? h("span", { class: "flag" }, " changed") : null),
    h("td", { class: "case-active" }, goldenCell(c.active)),
    h("td", { class: "case-draft" }, goldenCell(c.draft), c.changed ? h("details", {}, h("summary", {}, "diff"), h("pre", {}, c.diff)) : null),
    h("td", { class: "case-golden" }, golden));
}

async function tryDraft() {
  const err = show($("#draft-error"), false);
  const errors = show($("#draft-errors"), false);
  const result = show($("#draft-result"), false);
  const body = Object.assign({ rules: $("#draft-rules").value }, withAt(callback()) || {});
  const { status, data } = await postJSON("/draft", body);
  if (status === 422) {
    err.textContent = data.error;
    show(err, true);
    diagnosticList(errors, data.errors, data.diagnostics);
    return;
  }
  if (status !== 200) {
    err.textContent = data.error;
    show(err, true);
    return;
  }

  const summary = [];
  summary.push("The draft is valid (revision " + data.revision.slice(0, 12) + ").");
  if (data.callback) {
    summary.push(data.callback.changed ? "It decides the callback above differently." : "It decides the callback above as the active rules do.");
  }
  const cases = data.cases;
  const table = show($("#draft-cases"), false);
  if (cases && cases.error) {
    summary.push(cases.error);
  } else if (cases) {
    summary.push(cases.changed === 0
      ? "It decides all " + cases.total + " golden cases as the active rules do."
      : cases.changed + " of " + cases.total + " golden cases would be decided differently (highlighted).");
    if (cases.failing > 0) {
      summary.push(cases.failing + (cases.failing === 1 ? " fails its golden file" : " fail their golden files") +
        ", so --reload-cases would refuse this draft: when the change is meant, save it, run reservist test --update and review the golden files.");
    }
    const rows = [...cases.results].sort((a, b) => (b.changed - a.changed));
    table.tBodies[0].replaceChildren(...rows.map(caseRow));
    show(table, cases.total > 0);
  } else {
    summary.push("No --reload-cases directories are set, so only the callback is compared.");
  }
  $("#draft-summary").textContent = summary.join(" ");
  diagnosticList($("#draft-warnings"), data.warnings, data.diagnostics);

  const cb = $("#draft-callback");
  if (data.callback) {
    cb.replaceChildren(h("div", { class: "side-by-side" + (data.callback.changed ? " changed" : "") },
      decisionView(data.callback.active, "Active rules"),
      decisionView(data.callback.draft, "Draft")));
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
}

// fillFields copies a form body into the fields, so that picking a callback and then editing
// its attributes works.
function fillFields() {
  const q = new URLSearchParams($("#form-body").value.trim());
  for (const el of document.querySelectorAll("#as-fields [data-param]")) {
    if (!q.has(el.dataset.param)) continue;
    let v = q.get(el.dataset.param);
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
  $("#decide").addEventListener("click", () => decide().catch((e) => { $("#decide-error").textContent = String(e); show($("#decide-error"), true); }));
  $("#try-draft").addEventListener("click", () => tryDraft().catch((e) => { $("#draft-error").textContent = String(e); show($("#draft-error"), true); }));
  if ($("#recent")) {
    $("#recent").addEventListener("change", pickRecent);
    $("#recent-refresh").addEventListener("click", () => refreshRecent().catch(() => {}));
  }
  document.body.dataset.ready = "true"; // tests wait for this
}

start();
