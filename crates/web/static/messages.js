// Messages between staff arriving on open pages: listens to /manage/messages/stream
// (server-sent events) when the menu links to the mailbox. The count of unread
// messages shows beside that link; each new message raises a notice at the foot of
// the page (read by screen readers), and on the mailbox itself it is added at the
// top. Text only: nothing received is read as HTML.
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
    var url = "/manage/messages/stream";
    if (list && list.dataset.newest) url += "?after=" + encodeURIComponent(list.dataset.newest);
    function count(n) {
      badge.textContent = n > 0 ? String(n) : "";
      badge.hidden = !(n > 0);
    }
    var feed = new EventSource(url);
    feed.addEventListener("unread", function (e) { count(parseInt(e.data, 10) || 0); });
    feed.addEventListener("message", function (e) {
      var m;
      try { m = JSON.parse(e.data); } catch (x) { return; }
      count(m.unread);
      notice.textContent = m.notice + " " + m.body;
      notice.hidden = false;
      var template = document.getElementById("msg-item");
      if (list && template) {
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
    });
  });
})();
