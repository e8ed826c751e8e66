/// The UI's one stylesheet, compiled into the binary. Light and dark (prefers-color-scheme),
/// readable on a phone (tables scroll sideways), keyboard focus always visible, system fonts only.
enum Stylesheet {
    static let css = """
        :root { --bg: #ffffff; --fg: #1d2330; --muted: #5c6577; --line: #d9dde5; --accent: #2f6fde; --badge: #eef2fb; --plot: #fbfcfe; --error: #b42318; }
        @media (prefers-color-scheme: dark) {
          :root { --bg: #14171d; --fg: #e6e9ef; --muted: #a0a8b8; --line: #2c323d; --accent: #7aa7ff; --badge: #222a38; --plot: #181c23; --error: #ff8a80; }
        }
        * { box-sizing: border-box; }
        body { margin: 0; background: var(--bg); color: var(--fg); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
        header { display: flex; gap: 1rem; align-items: baseline; flex-wrap: wrap; padding: .75rem 1.25rem; border-bottom: 1px solid var(--line); }
        .brand { font-weight: 700; color: var(--fg); text-decoration: none; }
        form.account { margin-left: auto; display: flex; gap: .5rem; align-items: baseline; }
        details.actions { margin: 1.5rem 0; border: 1px solid var(--line); border-radius: 6px; padding: .5rem .75rem; }
        details.actions summary { cursor: pointer; font-weight: 600; }
        details.actions form { margin-top: .75rem; }
        form.edit { display: flex; flex-direction: column; gap: .5rem; max-width: 40rem; }
        form.edit label { display: flex; flex-direction: column; }
        textarea { font: inherit; color: var(--fg); background: var(--bg); border: 1px solid var(--line); border-radius: 4px; padding: .3rem .5rem; }
        table.compare tr.differs td, table.compare tr.differs th { background: var(--badge); font-weight: 600; }
        table.compare tr.differs th::before { content: "≠ "; color: var(--accent); }
        table.compare tr.section th { padding-top: 1rem; color: var(--muted); font-size: .85rem; text-transform: uppercase; letter-spacing: .04em; }
        button.danger { border-color: var(--error); color: var(--error); }
        form.signin { display: flex; flex-direction: column; gap: .75rem; max-width: 28rem; }
        form.signin label { display: flex; flex-direction: column; }
        main { padding: 1rem 1.25rem 3rem; max-width: 1200px; }
        a { color: var(--accent); }
        a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
        h1 { font-size: 1.5rem; margin: .5rem 0 1rem; overflow-wrap: anywhere; }
        h2 { font-size: 1.15rem; margin-top: 2rem; }
        h3 { font-size: 1rem; margin: 1.25rem 0 .25rem; }
        .muted { color: var(--muted); }
        .error { color: var(--error); }
        .description { max-width: 70ch; }
        .filters { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: end; margin: 0 0 1rem; }
        .filters label { display: flex; flex-direction: column; font-size: .85rem; color: var(--muted); }
        .filters label.check { flex-direction: row; gap: .3rem; align-items: center; color: var(--fg); }
        fieldset { border: 1px solid var(--line); display: flex; flex-wrap: wrap; gap: .25rem 1rem; }
        input, select, button { font: inherit; color: var(--fg); background: var(--bg); border: 1px solid var(--line); border-radius: 4px; padding: .3rem .5rem; }
        button { cursor: pointer; background: var(--badge); }
        .scroll { overflow-x: auto; }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        th a { color: var(--fg); }
        .num { text-align: right; font-variant-numeric: tabular-nums; }
        .uri, .hash, .path { overflow-wrap: anywhere; }
        .depth1 { padding-left: 1.6rem; } .depth2 { padding-left: 2.6rem; } .depth3 { padding-left: 3.6rem; }
        .depth4 { padding-left: 4.6rem; } .depth5 { padding-left: 5.6rem; } .depth6 { padding-left: 6.6rem; }
        dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
        dl.fields dt { color: var(--muted); }
        dl.fields dd { margin: 0; overflow-wrap: anywhere; }
        .label, .badge { display: inline-block; background: var(--badge); border-radius: 999px; padding: 0 .55rem; font-size: .85rem; margin: .1rem 0; }
        .badge .kind { color: var(--muted); }
        ul.badges { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .5rem; }
        pre.json { background: var(--plot); border: 1px solid var(--line); padding: .75rem; overflow-x: auto; }
        .pager { margin: 1rem 0; }
        figure.chart { margin: .5rem 0 1.5rem; max-width: 760px; }
        figure.chart svg { width: 100%; height: auto; }
        svg .plot { fill: var(--plot); stroke: var(--line); }
        svg .grid { stroke: var(--line); }
        svg .axis { stroke: var(--muted); }
        svg .tick, svg .axis-label { fill: var(--muted); font-size: 11px; }
        svg circle { opacity: 0; }
        svg circle:hover { opacity: 1; }
        figcaption { display: flex; flex-wrap: wrap; gap: .75rem; font-size: .85rem; }
        .swatch { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px; margin-right: .3rem; vertical-align: -1px; }
        .c0 { background: #2f6fde; } .c1 { background: #d9480f; } .c2 { background: #2b8a3e; } .c3 { background: #9c36b5; }
        .c4 { background: #c92a2a; } .c5 { background: #1098ad; } .c6 { background: #e8590c; } .c7 { background: #5c940d; }
        .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
        """
}
