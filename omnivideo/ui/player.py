"""The page's script for the player: seek the chat's <video> from citation links and the frame strip.

Installed once per page load (`demo.load(js=INSTALL_SEEK_JS)`): it defines `window.ovSeek(t)` and
one capturing click listener for every `#t=SECONDS` link (omnivideo/ui/citations.py writes them into
answers, omnivideo/ui/strip.py makes each strip frame one), so links added later by streaming or a newly
opened video need no wiring of their own. Captured before the chatbot's own link handling, which
would otherwise open `#t=...` as a new page.

    demo.load(None, None, None, js=INSTALL_SEEK_JS)
"""

PLAYER_ID = "player"

INSTALL_SEEK_JS = """
() => {
  if (window.ovSeek) return;
  window.ovSeek = (t) => {
    const v = document.querySelector('#%(player)s video');
    const s = Number(t);
    if (!v || !Number.isFinite(s) || s < 0) return false;
    v.currentTime = s;
    v.scrollIntoView({block: 'nearest'});
    return true;
  };
  document.addEventListener('click', (e) => {
    const a = e.target.closest ? e.target.closest('a[href^="#t="]') : null;
    if (!a) return;
    e.preventDefault();
    e.stopPropagation();
    window.ovSeek(parseFloat(a.getAttribute('href').slice(3)));
  }, true);
}
""" % {"player": PLAYER_ID}
