// The console's one script, served at /assets/console.js (the Content-Security-Policy
// allows no inline script or event handler attribute). Pages work without it.
document.addEventListener('DOMContentLoaded', function () {
  // Editor: clicking a diagnostic selects its line in the draft.
  var ta = document.getElementById('source');
  if (ta) {
    document.querySelectorAll('.diagnostic[data-line]').forEach(function (el) {
      el.addEventListener('click', function () {
        var lines = ta.value.split('\n'), n = parseInt(el.dataset.line, 10) - 1, start = 0;
        for (var i = 0; i < n && i < lines.length; i++) start += lines[i].length + 1;
        ta.focus();
        ta.setSelectionRange(start, start + (lines[n] || '').length);
        ta.scrollTop = Math.max(0, n - 5) * parseFloat(getComputedStyle(ta).lineHeight);
      });
    });
  }
  // Editor: line numbers follow the draft's lines and its scrolling.
  var gutter = document.getElementById('gutter');
  if (ta && gutter) {
    var number = function () {
      // A final line break ends the last line; it does not start a numbered one.
      var n = Math.max(1, ta.value.replace(/\n$/, '').split('\n').length), out = [];
      for (var i = 1; i <= n; i++) out.push(i);
      gutter.textContent = out.join('\n') + '\n';
      gutter.scrollTop = ta.scrollTop;
    };
    ta.addEventListener('input', number);
    ta.addEventListener('scroll', function () { gutter.scrollTop = ta.scrollTop; });
    number();
  }
  // Task page: one click selects the whole signed link, ready to copy.
  document.querySelectorAll('input.select-on-click').forEach(function (el) {
    el.addEventListener('click', function () { el.select(); });
  });
});

// Upload progress on the branch's hand-in form. Without script the form posts as usual.
(function () {
  var form = document.getElementById("hand-in-form");
  if (!form || !window.FormData || !window.XMLHttpRequest) return;
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var bar = document.getElementById("hand-in-progress");
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    bar.hidden = false;
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) bar.value = Math.round(e.loaded * 100 / e.total);
    };
    xhr.onload = function () {
      document.open();
      document.write(xhr.responseText);
      document.close();
    };
    xhr.onerror = function () { form.submit(); };
    xhr.send(new FormData(form));
  });
})();
