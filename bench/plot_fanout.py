"""Plot ``bench/fanout-results.jsonl`` (what ``bench/fanout.py`` appends) into
``docs/bench-fanout.png``: latency and memory per session against the number
of sessions.  The last run of each session count is plotted.

    .venv/bin/python bench/plot_fanout.py
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    runs: dict[int, dict] = {}
    for line in (HERE / "fanout-results.jsonl").read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            # experiments (filters, another backlog or GC thresholds, a short load) are not plotted
            if not (r.get("filters") or r.get("backlog") or r.get("gc")) and r.get("seconds", 60) >= 60:
                runs[r["agents"]] = r
    ns = sorted(runs)
    rs = [runs[n] for n in ns]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.plot(ns, [r["p50_ms"] for r in rs], "o-", label="p50")
    ax1.plot(ns, [r["p99_ms"] for r in rs], "s-", label="p99")
    ax1.plot(ns, [r["max_ms"] for r in rs], "^:", label="max")
    ax1.axhline(50, color="red", lw=0.8, ls="--", label="target p99 < 50 ms")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("WebSocket sessions (agents, READY)")
    ax1.set_ylabel("ms, AMI event in UCS → message at client")
    ax1.set_title("Fan-out latency (5 calls/s per 1,000 agents)")
    ax1.set_xticks(ns, [f"{n:,}" for n in ns])
    ax1.legend()
    ax1.grid(True, which="both", alpha=0.3)
    ax2.plot(ns, [r["kib_per_session"] for r in rs], "o-", label="RSS per session (KiB)")
    ax2.axhline(40, color="red", lw=0.8, ls="--", label="target ≤ 40 KiB")
    ax2.set_xscale("log")
    ax2.set_xlabel("WebSocket sessions")
    ax2.set_ylabel("KiB per session")
    ax2.set_xticks(ns, [f"{n:,}" for n in ns])
    ax2.set_ylim(0, max(45, max(r["kib_per_session"] for r in rs) * 1.2))
    ax3 = ax2.twinx()
    ax3.plot(ns, [r["load_cpu_pct"] for r in rs], "s--", color="tab:green", label="CPU under load (%)")
    ax3.plot(ns, [r["idle_cpu_pct"] for r in rs], "^--", color="tab:gray", label="CPU idle (%)")
    ax3.set_ylabel("% of one core (UCS process)")
    ax3.set_ylim(0, 110)
    h1, l1 = ax2.get_legend_handles_labels()
    h3, l3 = ax3.get_legend_handles_labels()
    ax2.legend(h1 + h3, l1 + l3, loc="upper left", fontsize=8)
    ax2.set_title("Memory and CPU of the UCS process")
    ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    out = HERE.parent / "docs" / "bench-fanout.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
