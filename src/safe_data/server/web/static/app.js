// The safe-data web view.  Everything the server sends is shown as text (textContent
// only, never parsed as markup).  The token travels only in the Authorization header and
// is kept in sessionStorage: for this tab's session, gone when it closes; never in
// storage that outlives the tab, a cookie or the URL.
"use strict";

(function () {
  const TOKEN_KEY = "safe-data-token";
  let token = "";
  let query = null;     // the parameters of the search being paged
  let starts = [null];  // starts[i]: the cursor page i starts after (null: the beginning)
  let pageIndex = 0;
  let searchId = 0;     // a newer search or page request makes an older one stop

  const $ = (id) => document.getElementById(id);

  function status(text, ok) {
    $("status").textContent = text;
    $("status").className = ok ? "ok" : "";
  }

  function signOut(message) {
    token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    $("login-form").hidden = false;
    $("session").hidden = true;
    $("search-section").hidden = true;
    $("restore-section").hidden = true;
    $("record").hidden = true;
    status(message);
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
      if (response.status === 401) signOut(message);  // a stale saved token goes too
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
    const given = $("token").value.trim();
    $("token").value = "";
    await connectWith(given);
  }

  async function connectWith(given) {
    token = given;
    try {
      const info = await (await api("sources", {})).json();
      const source = $("source");
      source.replaceChildren();
      for (const name of info.sources) {
        option(source, name, name === "journal"
          ? "journal " + (info.journal || "") + " (last good restore drill: " + (info.last_good_drill || "never") + ")"
          : "store: " + info.namespace);
      }
      const op = $("op");
      while (op.options.length > 2) op.remove(2);
      for (const name of info.ops) option(op, name, name);
      sessionStorage.setItem(TOKEN_KEY, token);
      $("who").textContent = "namespace " + info.namespace;
      $("login-form").hidden = true;
      $("session").hidden = false;
      $("search-section").hidden = false;
      $("restore-section").hidden = false;
      status("connected", true);
    } catch (e) {
      if (token) signOut(e.message);  // (a 401 already did)
    }
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    td.title = text;
    row.appendChild(td);
    return td;
  }

  const COLUMNS = ["time (UTC)", "container", "op", "key", "discarded", "caller"];

  function addRows(records) {
    const body = $("results").tBodies[0];
    for (const r of records) {
      const row = document.createElement("tr");
      row.className = "result";
      const texts = [r.time.replace("T", " ").replace("+00:00", ""), r.container, r.op, r.key,
                     r.values, r.caller];
      texts.forEach((text, i) => { cell(row, text).dataset.label = COLUMNS[i]; });
      const button = document.createElement("button");
      button.type = "button";
      button.className = "open";
      button.textContent = "open";
      button.addEventListener("click", () => openRecord(r));
      row.appendChild(document.createElement("td")).appendChild(button);
      body.appendChild(row);
    }
  }

  // One page: up to `limit` records after cursor `start`.  The server answers a search
  // in slices of at most a few seconds, so a page may take several requests.
  async function fetchPage(start, id) {
    const limit = Number(query.limit);
    let records = [];
    let cursor = start;
    let undecodable = 0;
    do {
      const params = Object.assign({}, query, { limit: String(limit - records.length) });
      if (cursor) params.after = cursor;
      const data = await (await api("records", params)).json();
      if (id !== searchId) return null;  // overtaken by another request
      records = records.concat(data.records);
      undecodable += data.undecodable;
      cursor = data.next;
      if (cursor && records.length < limit) status("searching... " + records.length + " found", true);
    } while (cursor && records.length < limit);
    return { records: records, next: cursor, undecodable: undecodable };
  }

  // The table, the pager and the summary change together, only from a page received
  // (or emptied when a new search fails), so the summary always counts what is shown.
  function show(index, page) {
    $("results").tBodies[0].replaceChildren();
    addRows(page.records);
    pageIndex = index;
    starts.length = index + 1;
    if (page.next) starts.push(page.next);
    const count = page.records.length;
    const first = index * Number(query.limit) + 1;
    let text;
    if (count === 0) {
      text = index === 0 ? "no records" : "no more records";
    } else {
      text = "records " + first + "–" + (first + count - 1)
        + (page.next ? "" : " of " + (first + count - 1));
    }
    text += query.order === "newest" ? ", newest first" : ", oldest first";
    if (page.undecodable) text += " (" + page.undecodable + " undecodable skipped)";
    $("summary").textContent = text;
    $("page").textContent = "page " + (index + 1);
    $("previous").disabled = index === 0;
    $("next").disabled = !page.next;
    $("pager").hidden = index === 0 && !page.next;
  }

  // Show page `index`: true once shown, false if it failed (the page shown stays, with its
  // summary), null if another request overtook it.
  async function goTo(index) {
    const id = ++searchId;
    try {
      status("searching...", true);
      const page = await fetchPage(starts[index], id);
      if (page === null) return null;
      show(index, page);
      status("", true);
      return true;
    } catch (e) {
      if (id !== searchId) return null;
      status(e.message);
      return false;
    }
  }

  async function search(event) {
    event.preventDefault();
    query = {
      source: $("source").value, container: $("container").value, match: $("match").value,
      op: $("op").value, since: $("since").value, until: $("until").value,
      order: $("order").value, limit: $("limit").value || "50",
    };
    starts = [null];
    $("record").hidden = true;
    if ($("container").value && $("match").value === "exact") {
      $("restore-container").value = $("container").value;
    }
    if (await goTo(0) === false) {  // the previous search's rows do not stay under this one
      show(0, { records: [], next: null, undecodable: 0 });
      $("summary").textContent = "no records shown: the search failed";
    }
  }

  function callerText(caller) {
    if (!Array.isArray(caller) || caller.length !== 3) return caller == null ? "(not captured)" : JSON.stringify(caller);
    return caller[0] + ":" + caller[1] + " in " + caller[2];
  }

  async function openRecord(summary) {
    try {
      const r = await (await api("record", {
        source: query.source, segment: summary.segment, offset: String(summary.offset),
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
    $("disconnect").addEventListener("click", () => signOut(""));
    $("search-form").addEventListener("submit", search);
    $("previous").addEventListener("click", () => goTo(pageIndex - 1));
    $("next").addEventListener("click", () => goTo(pageIndex + 1));
    $("restore-form").addEventListener("submit", download);
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) connectWith(saved);
  });
})();
