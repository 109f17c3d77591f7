// Messages between staff arriving on open pages: listens to /manage/messages/stream
// (server-sent events) when the menu links to the mailbox. The count of unread
// messages shows beside that link; each new message raises a notice at the foot of
// the page (read by screen readers), and on the mailbox itself it is added at the
// top. Text only: nothing received is read as HTML.
//
// One tab holds the feed (a Web Lock) and passes what it hears to the others (a
// BroadcastChannel), so a person with many tabs open holds one connection, not one
// per tab (a browser allows six per site over HTTP/1.1). When that tab closes,
// another takes the lock and opens the feed. Without those APIs each tab listens.
(function () {
  "use strict";
  if (!window.EventSource) return;
  document.addEventListener("DOMContentLoaded", function () {
    var link = document.querySelector('#site-nav a[href="/manage/messages"]');
    if (!link) return;
    var badge = document.createElement("span");
    badge.id = "msg-badge";
    badge.className = "badge";
    badge.hidden = true;
    link.appendChild(document.createTextNode(" "));
    link.appendChild(badge);
    var notice = document.createElement("div");
    notice.id = "msg-notice";
    notice.className = "toast";
    notice.setAttribute("role", "status");
    notice.setAttribute("aria-live", "polite");
    notice.hidden = true;
    document.body.appendChild(notice);
    var list = document.getElementById("msg-list");
    var unread = 0;

    function count(n) {
      unread = n;
      badge.textContent = n > 0 ? String(n) : "";
      badge.hidden = !(n > 0);
    }

    function show(m) {
      count(m.unread);
      notice.textContent = m.notice + " " + m.body;
      notice.hidden = false;
      var template = document.getElementById("msg-item");
      if (!list || !template || list.querySelector('li[data-id="' + Number(m.id) + '"]')) return;
      var item = template.content.firstElementChild.cloneNode(true);
      item.dataset.id = m.id;
      item.querySelector("strong").textContent = m.from;
      item.querySelector(".msg-to").textContent = m.to;
      item.querySelector(".msg-at").textContent = m.at;
      item.querySelector(".msg-body").textContent = m.body;
      list.insertBefore(item, list.firstChild);
      var none = document.getElementById("msg-none");
      if (none) none.hidden = true;
    }

    var channel = window.BroadcastChannel ? new BroadcastChannel("lianyi-messages") : null;

    // Holds the feed until the tab closes (the promise never settles).
    function listen() {
      return new Promise(function () {
        var url = "/manage/messages/stream";
        if (list && list.dataset.newest) url += "?after=" + encodeURIComponent(list.dataset.newest);
        var feed = new EventSource(url);
        feed.addEventListener("unread", function (e) {
          count(parseInt(e.data, 10) || 0);
          if (channel) channel.postMessage({ unread: unread });
        });
        feed.addEventListener("message", function (e) {
          var m;
          try { m = JSON.parse(e.data); } catch (x) { return; }
          show(m);
          if (channel) channel.postMessage({ message: m });
        });
        if (channel) {
          channel.onmessage = function (e) {
            if (e.data && e.data.ask) channel.postMessage({ unread: unread });
          };
        }
      });
    }

    if (channel && navigator.locks) {
      channel.onmessage = function (e) {
        if (!e.data) return;
        if (e.data.message) show(e.data.message);
        else if (typeof e.data.unread === "number") count(e.data.unread);
      };
      channel.postMessage({ ask: true });
      navigator.locks.request("lianyi-messages-feed", listen);
    } else {
      listen();
    }
  });
})();
