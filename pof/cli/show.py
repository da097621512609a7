"""How search results read on a terminal (the text of pof search; --json prints them as they are)."""
from __future__ import annotations

import click


def _clock(seconds: float) -> str:
    """mm:ss (minutes go past 59 for long videos)."""
    s = int(seconds)
    return f"{s // 60:02d}:{s % 60:02d}"


def _print_video(r: dict) -> None:
    if r["error"]:
        click.echo(r["error"] if r["error"].startswith(f"{r['video']}: ") else f"{r['video']}: {r['error']}")
    if not r["tracks"]:
        return
    click.echo(f"{r['video']}: {_clock(r['duration'])}, {r['fps']:g} fps, {r['frames_read']} frames "
               f"read, {r['frames_analysed']} analysed, {len(r['tracks'])} face "
               f"track{'s' if len(r['tracks']) > 1 else ''}")
    click.echo("  track  start  end    frames  quality  decision")
    for t in r["tracks"]:
        row = f"  {t['track']:<5}  {_clock(t['start'])}  {_clock(t['end'])}  {t['frames_used']:>6}  {t['quality']:>7.2f}  "
        if t["decision"] == "quality_too_low":
            click.echo(row + f"not searched: {t.get('reason', 'quality too low')}")
            continue
        click.echo(row + _verdict(t))
        _print_candidates(t["candidates"])


def _verdict(r: dict) -> str:
    """A search result's decision in words, with the rule behind it."""
    verdict = "possible match" if r["decision"] == "match" else "no confident match"
    return f"{verdict} (threshold {r['threshold']:.3f}, FPIR {r['fpir']:.2%})"


def _print_candidates(cands: list[dict]) -> None:
    for c in cands:
        bound = "<" if c["fmr_upper_bound"] else ""
        click.echo(f"    {c['score']:.3f}  FMR {bound}{c['fmr']:.2g}  {c['name']} [{c['person']}]"
                   f"  evidence {' '.join(c['evidence'])}")
    click.echo("  candidates are leads for a person to check, not identifications.")


def _print_search(path: str, results: list[dict], error: str | None) -> None:
    if error:
        click.echo(error if error.startswith(f"{path}: ") else f"{path}: {error}")
        return
    for i, r in enumerate(results):
        x, y, w, h = r["box"]
        if r["decision"] == "quality_too_low":
            click.echo(f"{path} face {i + 1} at ({x:.0f}, {y:.0f}, {w:.0f} x {h:.0f}): not searched: {r['reason']}")
            continue
        restored = " (heavily JPEG-compressed photo: described after smoothing its blocks)" \
            if r.get("restored") else ""
        click.echo(f"{path} face {i + 1} at ({x:.0f}, {y:.0f}, {w:.0f} x {h:.0f}), quality "
                   f"{r['quality']:.2f}{restored}: {_verdict(r)}")
        _print_candidates(r["candidates"])
