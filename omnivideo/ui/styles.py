"""The page's CSS: status notices (done, failed, info), the wrapping frame strip, answer details.

Passed to `launch(css=...)` (omnivideo/ui/server.py). Colours are tints over the theme's own
background and text colours, so the page reads the same in Gradio's light and dark modes.
"""

CSS = """
/* A status says at a glance whether something worked: a tinted box with a coloured edge. */
.ov-notice { display: flex; gap: 0.5em; align-items: baseline; border-left: 4px solid; border-radius: 6px;
  padding: 6px 10px; }
.ov-notice p { margin: 0; }
.ov-notice::before { font-weight: bold; }
.ov-ok { border-color: #16a34a; background: rgba(22, 163, 74, 0.10); }
.ov-ok::before { content: "✓"; color: #16a34a; }
.ov-error { border-color: #dc2626; background: rgba(220, 38, 38, 0.10); }
.ov-error::before { content: "⚠"; color: #dc2626; }
.ov-info { border-color: var(--border-color-primary); background: var(--background-fill-secondary); }
.ov-info::before { content: "ℹ"; }
/* room for the one progress bar of an ingest or an open, which Gradio draws over this component */
#library-status, #sessions-status { min-height: 3.2em; }

/* The frame strip: a grid that adds or drops columns with the width, so every frame stays visible. */
#strip .ov-strip-title { font-size: var(--block-label-text-size); color: var(--block-label-text-color);
  margin: 0 0 6px; }
#strip .ov-strip { display: grid; grid-template-columns: repeat(auto-fill, minmax(84px, 1fr)); gap: 6px; }
#strip .ov-frame { display: flex; flex-direction: column; border: 1px solid var(--border-color-primary);
  border-radius: 6px; overflow: hidden; text-decoration: none; background: var(--background-fill-secondary); }
#strip .ov-frame img { display: block; width: 100%; height: auto; margin: 0; }
#strip .ov-frame span { text-align: center; font-size: 0.8em; padding: 2px 0; color: var(--body-text-color);
  font-variant-numeric: tabular-nums; }
#strip .ov-frame:hover, #strip .ov-frame:focus-visible { outline: 2px solid var(--color-accent); outline-offset: 1px; }
#strip .ov-strip-empty { opacity: 0.7; margin: 0; }

#chat a.ov-seek { font-variant-numeric: tabular-nums; text-decoration: underline dotted; cursor: pointer; }
#chat .ov-details { display: block; margin-top: 0.6em; font-size: 0.85em; opacity: 0.75; }
#chat .ov-answer-error { color: #dc2626; }
"""
