package report

import "html/template"

// pageTmpl is the report page. Everything is inline and the content
// security policy forbids loading anything else, so the file can be mailed
// or attached to a change ticket as it is.
var pageTmpl = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1d2330; background: #fff; margin: 24px 32px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h1 .id { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-weight: 600; }
h2 { font-size: 17px; margin: 28px 0 10px; border-bottom: 1px solid #d8dde6; padding-bottom: 4px; }
.sub { color: #5b6475; margin: 0 0 16px; }
code, pre, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
dl.head { display: grid; grid-template-columns: max-content 1fr max-content 1fr; gap: 2px 18px; margin: 0; }
dl.head dt { color: #5b6475; }
dl.head dd { margin: 0; word-break: break-all; }
.status { display: inline-block; padding: 1px 9px; border-radius: 10px; font-weight: 600; color: #fff; }
.status.ok { background: #2e7d32; } .status.failed { background: #c62828; } .status.refused { background: #e07b00; } .status.open { background: #1565c0; } .status.stopped { background: #5f6b7d; }
.error { background: #fdecea; border-left: 4px solid #c62828; padding: 8px 12px; white-space: pre-wrap; margin: 12px 0 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid #e6e9ef; }
th { background: #f3f5f9; font-weight: 600; position: sticky; top: 0; }
table.params { width: auto; min-width: 360px; }
.state { font-weight: 600; white-space: nowrap; }
.state.done { color: #2e7d32; } .state.failed { color: #c62828; } .state.refused { color: #e07b00; } .state.skipped { color: #7a8294; } .state.started { color: #1565c0; }
tr.skipped td { color: #7a8294; }
.tag { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 8px; background: #eef1f6; color: #39414f; margin-left: 4px; }
.tag.mut { background: #fff1e0; color: #9a5200; }
.detail td { border-bottom: 1px solid #d8dde6; padding-top: 0; }
.stmt { margin: 4px 0 8px; }
.stmt .on { color: #5b6475; font-size: 12px; }
.stmt pre { margin: 2px 0 0; padding: 6px 10px; background: #f6f8fa; border: 1px solid #e6e9ef; border-radius: 4px; white-space: pre-wrap; word-break: break-word; }
.why { color: #5b6475; white-space: pre-wrap; }
.err { color: #c62828; white-space: pre-wrap; }
.nowrap { white-space: nowrap; }
.local { color: #7a8294; font-family: system-ui, sans-serif; font-size: 13px; }
svg.timeline { display: block; max-width: 100%; height: auto; }
.chart { overflow-x: auto; border: 1px solid #e6e9ef; border-radius: 4px; }
.legend { margin: 0 0 8px; color: #39414f; }
.legend span { display: inline-block; width: 12px; height: 12px; border-radius: 2px; vertical-align: -1px; margin: 0 4px 0 14px; }
.legend span:first-child { margin-left: 0; }
svg text { font: 12px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: #1d2330; }
svg text.tick { fill: #5b6475; font-size: 11px; }
svg text.glabel { font-weight: 600; }
svg text.gdetail { fill: #5b6475; }
svg .axis { stroke: #8a93a6; stroke-width: 1; }
svg .grid { stroke: #e6e9ef; stroke-width: 1; }
svg .gband { fill: #ffffff; }
svg .gband.shade { fill: #f6f8fb; }
svg .gline { stroke: #d8dde6; stroke-width: 1; }
.bar-done, .sw-done { fill: #43a047; background: #43a047; }
.bar-failed, .sw-failed { fill: #e53935; background: #e53935; }
.bar-interrupted, .sw-interrupted { fill: #8e24aa; background: #8e24aa; }
.bar-refused, .sw-refused { fill: #fb8c00; background: #fb8c00; }
.bar-open, .sw-open { fill: #1e88e5; background: #1e88e5; }
svg .bar:hover { stroke: #1d2330; stroke-width: 1.5; }
svg .mark { fill: #fb8c00; stroke: #9a5200; stroke-width: 1; }
.summary { background: #f6f8fb; border: 1px solid #d8dde6; border-radius: 6px; padding: 10px 16px; margin: 12px 0 0; }
.summary p.outcome { font-size: 15px; font-weight: 600; margin: 4px 0 8px; }
.summary h3 { font-size: 14px; margin: 12px 0 4px; }
.summary ul { margin: 0; padding-left: 20px; }
.state.restored { color: #6a4c93; } tr.restored td { color: #6a4c93; }
details.log pre { max-height: 480px; overflow: auto; background: #f6f8fa; border: 1px solid #e6e9ef; padding: 6px 10px; }
footer { margin-top: 28px; color: #7a8294; font-size: 12px; }
</style>
</head>
<body>
<h1>flow run <span class="id">{{.RunID}}</span></h1>
<p class="sub">{{.PlaybookName}} &middot; <span class="status {{.StatusClass}}">{{.Status}}</span></p>
<dl class="head">
<dt>run id</dt><dd class="mono">{{.RunID}}</dd>
<dt>playbook</dt><dd>{{.PlaybookName}} (<span class="mono">{{.Playbook}}</span>)</dd>
<dt>sha256</dt><dd class="mono">{{.SHA}}</dd>
<dt>operator</dt><dd>{{.Operator}}</dd>
<dt>control host</dt><dd>{{.Host}}{{if .PID}}, pid {{.PID}}{{end}}</dd>
<dt>mode</dt><dd>{{.Mode}}</dd>
<dt>status</dt><dd>{{.Status}}</dd>
<dt>started</dt><dd>{{.Started}}</dd>
<dt>duration</dt><dd>{{.Duration}}</dd>
{{if .Config}}<dt>config</dt><dd class="mono">{{.Config}}</dd>
{{end}}<dt>flow version</dt><dd>{{.Version}}</dd>
</dl>
{{if .Error}}<div class="error mono">{{.Error}}</div>{{end}}

<h2>Summary</h2>
{{with .Summary}}<div class="summary">
<p class="outcome">{{.Outcome}}.</p>
{{if .Facts}}<h3>What the playbook recorded</h3><ul>
{{range .Facts}}<li><span class="mono">{{.Clock}}</span> {{.Text}}</li>
{{end}}</ul>{{end}}
<h3>Who decided</h3>{{if .Decided}}<ul>
{{range .Decided}}<li><span class="mono">{{.Clock}}</span> {{.Text}}{{if gt .Attempt 1}} (attempt {{.Attempt}}){{end}}</li>
{{end}}</ul>{{else}}<p class="sub">no confirmation point was reached; no signal was received.</p>{{end}}
<h3>What changed, by target</h3>{{if .Changes}}<ul>
{{range .Changes}}<li><span class="mono">{{.Target}}</span>: {{.Count}} statement(s) or command(s) from {{.First}}<ul>
{{range .Statements}}<li class="mono">{{.}}</li>{{end}}{{if .More}}<li>and {{.More}} more (see Steps)</li>{{end}}</ul></li>
{{end}}</ul>{{else}}<p class="sub">nothing: no state-changing statement or command was sent.</p>{{end}}
{{if .Safety}}<h3>Rescue and run lock</h3><ul>
{{range .Safety}}<li><span class="mono">{{.Clock}}</span> {{.Text}}{{if gt .Attempt 1}} (attempt {{.Attempt}}){{end}}</li>
{{end}}</ul>{{end}}
{{if gt (len .Attempts) 1}}<h3>Attempts</h3><table class="params">
<tr><th>#</th><th>started (UTC)</th><th>ended</th><th>outcome</th><th>by</th><th>steps run</th><th>restored</th></tr>
{{range .Attempts}}<tr><td>{{.N}}</td><td class="mono">{{.Started}}</td><td class="mono">{{.Ended}}</td><td>{{.Status}}</td><td>{{.Operator}} on {{.Host}}</td><td>{{.Steps}}{{if .Failed}} ({{.Failed}} failed or refused){{end}}</td><td>{{.Restored}}</td></tr>
{{end}}</table>{{end}}
</div>{{end}}

<h2>Timeline</h2>
{{with .Timeline}}<p class="legend"><span class="sw-done"></span>done<span class="sw-failed"></span>failed<span class="sw-interrupted"></span>interrupted<span class="sw-refused"></span>refused<span class="sw-open"></span>not finished
 &middot; {{.Bars}} executed {{if eq .Bars 1}}step{{else}}steps{{end}}, grouped by host and parallel item{{if .Skipped}}; {{.Skipped}} skipped {{if eq .Skipped 1}}step is{{else}}steps are{{end}} listed below, not drawn{{end}}. Hover a bar for details.</p>
<div class="chart">
<svg class="timeline" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="timeline of the run's steps">
{{range .Groups}}<rect class="gband{{if .Shade}} shade{{end}}" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}"></rect>
<line class="gline" x1="{{.X}}" y1="{{.Y}}" x2="{{.W}}" y2="{{.Y}}"></line>
{{end}}{{range .Ticks}}<line class="grid" x1="{{.X}}" y1="{{$.Timeline.AxisY}}" x2="{{.X}}" y2="{{$.Timeline.GridY2}}"></line>
<line class="axis" x1="{{.X}}" y1="{{$.Timeline.TickTop}}" x2="{{.X}}" y2="{{$.Timeline.AxisY}}"></line>
<text class="tick" x="{{.X}}" y="22" text-anchor="middle">{{.Label}}</text>
{{end}}{{range .Groups}}<g class="group">
<text class="glabel" x="8" y="{{.LabelY}}">{{.Label}}</text><text class="gdetail" x="{{$.Timeline.AxisX1}}" y="{{.LabelY}}">{{.Detail}}</text>
{{range .Rows}}<text class="slabel" x="{{.LabelX}}" y="{{.TextY}}">{{.Label}}</text>
{{with .Bar}}<rect class="{{.Class}}" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" rx="2"><title>{{.Title}}</title></rect>
{{end}}{{with .Mark}}<polygon class="mark" points="{{.Points}}"><title>{{.Title}}</title></polygon>
{{end}}{{end}}</g>
{{end}}<line class="axis" x1="{{.AxisX1}}" y1="{{.AxisY}}" x2="{{.AxisX2}}" y2="{{.AxisY}}"></line>
</svg>
</div>
{{end}}
<h2>Parameters</h2>
{{if .Params}}<table class="params">
<tr><th>name</th><th>value</th></tr>
{{range .Params}}<tr><td class="mono">{{.Key}}</td><td class="mono">{{.Value}}</td></tr>
{{end}}</table>
{{else}}<p class="sub">none set with --var (defaults, the environment and the config applied).</p>
{{end}}
<h2>Steps</h2>
<p class="sub">{{.Counts}}</p>
<table class="steps">
<tr><th>#</th><th>start</th><th>duration</th><th>outcome</th><th>step</th><th>where</th><th>target</th></tr>
{{range .Steps}}<tr class="step {{.State}}">
<td>{{.N}}</td>
<td class="nowrap"><span class="mono">{{.Offset}}</span><br><span class="sub mono">{{.Clock}}</span></td>
<td class="nowrap mono">{{.Duration}}</td>
<td class="state {{.State}}">{{.StateLabel}}</td>
<td>{{.Name}} <span class="tag">{{.Type}}</span>{{if .Mutates}}<span class="tag mut">changes state</span>{{end}}</td>
<td class="nowrap mono">{{.Where}}{{if ne .Worker "main"}} [{{.Worker}}]{{end}}</td>
<td class="mono">{{if .Target}}{{.Target}}{{else if .Executed}}<span class="local">control host</span>{{end}}</td>
</tr>
{{if .HasDetail}}<tr class="detail"><td></td><td colspan="6">
{{if .Reason}}<div class="why">why: {{.Reason}}</div>{{end}}
{{if .Error}}<div class="err mono">error: {{.Error}}</div>{{end}}
{{range .Statements}}<div class="stmt"><div class="on">{{.Offset}} on <span class="mono">{{.Target}}</span></div><pre>{{.Text}}</pre></div>
{{end}}</td></tr>
{{end}}{{end}}</table>
{{with .Summary}}{{if .Logs}}<h2>Log</h2>
<details class="log"><summary>{{.LogCount}} log line(s) of the run, as the journal recorded them</summary>
<pre>{{range .Logs}}{{.Clock}} [{{.Where}}] [{{.Level}}] {{.Msg}}
{{end}}</pre></details>{{end}}{{end}}
<footer>Generated by flow report from the run's journal (statements and parameters as recorded, secrets masked). flow audit {{.RunID}} proves the journal was not edited.</footer>
</body>
</html>
`))
