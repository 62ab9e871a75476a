// The safe-data web view.  Everything the server sends is shown as text (textContent
// only, never parsed as markup); the token stays in this page's memory and travels only in the
// Authorization header.
"use strict";

(function () {
  let token = "";
  let lastQuery = null;   // the parameters of the search being paged
  let nextCursor = null;

  const $ = (id) => document.getElementById(id);

  function status(text, ok) {
    $("status").textContent = text;
    $("status").className = ok ? "ok" : "";
  }

  async function api(path, params) {
    const url = "api/" + path + "?" + new URLSearchParams(params).toString();
    const response = await fetch(url, {
      headers: { "Authorization": "Bearer " + token },
      cache: "no-store",
      credentials: "omit",
    });
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try {
        const body = await response.text();
        try { message += ": " + JSON.parse(body).error; } catch (e) { message += ": " + body.trim(); }
      } catch (e) { /* no body */ }
      throw new Error(message);
    }
    return response;
  }

  function option(select, value, label) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = label;
    select.appendChild(o);
  }

  async function connect(event) {
    event.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    try {
      const info = await (await api("sources", {})).json();
      const source = $("source");
      source.replaceChildren();
      for (const name of info.sources) {
        option(source, name, name === "journal" ? "journal " + (info.journal || "")
                                                : "store: " + info.namespace);
      }
      const op = $("op");
      while (op.options.length > 2) op.remove(2);
      for (const name of info.ops) option(op, name, name);
      $("who").textContent = "namespace " + info.namespace;
      $("search-section").hidden = false;
      $("restore-section").hidden = false;
      status("connected", true);
    } catch (e) {
      token = "";
      status(e.message);
    }
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    td.title = text;
    row.appendChild(td);
    return td;
  }

  function addRows(records) {
    const body = $("results").tBodies[0];
    for (const r of records) {
      const row = document.createElement("tr");
      row.className = "result";
      cell(row, r.time.replace("T", " ").replace("+00:00", ""));
      cell(row, r.container);
      cell(row, r.op);
      cell(row, r.key);
      cell(row, r.values);
      cell(row, r.caller);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "open";
      button.textContent = "open";
      button.addEventListener("click", () => openRecord(r));
      row.appendChild(document.createElement("td")).appendChild(button);
      body.appendChild(row);
    }
  }

  async function page() {
    const params = Object.assign({}, lastQuery);
    if (nextCursor) params.after = nextCursor;
    const data = await (await api("records", params)).json();
    addRows(data.records);
    nextCursor = data.next;
    $("more").hidden = !nextCursor;
    const shown = $("results").tBodies[0].rows.length;
    let text = shown + (shown === 1 ? " record" : " records") + (nextCursor ? " so far" : "");
    if (data.undecodable) text += " (" + data.undecodable + " undecodable skipped)";
    $("summary").textContent = text;
  }

  async function search(event) {
    event.preventDefault();
    lastQuery = {
      source: $("source").value, container: $("container").value, match: $("match").value,
      op: $("op").value, since: $("since").value, until: $("until").value,
      limit: $("limit").value || "50",
    };
    nextCursor = null;
    $("results").tBodies[0].replaceChildren();
    $("record").hidden = true;
    if ($("container").value && $("match").value === "exact") {
      $("restore-container").value = $("container").value;
    }
    try {
      status("searching...", true);
      await page();
      status("", true);
    } catch (e) {
      status(e.message);
    }
  }

  async function more() {
    try { await page(); } catch (e) { status(e.message); }
  }

  function callerText(caller) {
    if (!Array.isArray(caller) || caller.length !== 3) return caller == null ? "(not captured)" : JSON.stringify(caller);
    return caller[0] + ":" + caller[1] + " in " + caller[2];
  }

  async function openRecord(summary) {
    try {
      const r = await (await api("record", {
        source: lastQuery.source, segment: summary.segment, offset: String(summary.offset),
      })).json();
      $("rec-container").textContent = r.container + " (" + r.kind + ")";
      $("rec-op").textContent = r.op;
      $("rec-key").textContent = JSON.stringify(r.key, null, 2);
      $("rec-values").textContent = JSON.stringify(r.values, null, 2);
      $("rec-time").textContent = r.time + " (" + r.time_ns + " ns)";
      $("rec-caller").textContent = r.caller ? callerText(r.caller) : "(not captured)";
      $("rec-process").textContent = "pid " + r.pid + ", thread " + r.thread + ", writer " + r.writer + ", seq " + r.seq;
      $("rec-address").textContent = r.segment + ":" + r.offset;
      $("record").hidden = false;
      $("restore-container").value = r.container;
      status("", true);
    } catch (e) {
      status(e.message);
    }
  }

  async function download(event) {
    event.preventDefault();
    const container = $("restore-container").value;
    if (!container) { status("name a container to restore"); return; }
    try {
      const response = await api("restore", {
        source: $("source").value, container: container, at: $("restore-at").value,
        mode: $("restore-mode").value, partial: $("restore-partial").checked ? "1" : "0",
      });
      const disposition = response.headers.get("Content-Disposition") || "";
      const match = /filename="([A-Za-z0-9._-]+)"/.exec(disposition);
      const blob = await response.blob();
      const url = URL.createObjectURL(new Blob([blob], { type: "application/json" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = match ? match[1] : "restore.json";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      status("downloaded " + a.download, true);
    } catch (e) {
      status(e.message);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", connect);
    $("search-form").addEventListener("submit", search);
    $("more").addEventListener("click", more);
    $("restore-form").addEventListener("submit", download);
  });
})();
