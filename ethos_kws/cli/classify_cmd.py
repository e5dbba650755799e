"""``ethos-kws classify A.wav [B.wav | DIR ...]``: keyword spotting on recordings, any backend."""

from __future__ import annotations

from .common import add_command, add_json_arg, add_model_arg, print_json
from .run_cmd import add_backend_args, backend_stdout, open_backend

EXAMPLES = """examples:
  ethos-kws classify yes.wav                        one clip: label, score, top 3
  ethos-kws classify a.wav b.flac clips/ --json     many files / a folder: a table, one JSON document
  ethos-kws classify meeting.wav --stride-ms 100 --average-ms 300 --threshold 0.8
                                                    stream a long recording: merged keyword events
  ethos-kws classify rec.wav --backend npu-sim --accel u55-128 --report out/   timeline plot
  ethos-kws classify rec.wav --model streaming.tflite --sequence --backend npu-sim
                                                    a stateful model fed the recording frame by frame
"""


def register(sub) -> None:
    from ..classify import DEFAULT_AVERAGE_MS, DEFAULT_STRIDE_MS, DEFAULT_THRESHOLD

    p = add_command(
        sub, "classify",
        help="classify audio files (MFCC front end + model): label, score, top 3, keyword events",
        description="Compute the MFCC features of audio files (any rate or channel count; resampled "
        "to 16 kHz mono with soxr when needed, and said so) and run the model. A clip of up to 1 s "
        "gives its label, score and top 3. A longer recording is streamed as Arm's ML evaluation "
        "kit does: a 1 s window every --stride-ms, the posteriors of the windows within "
        "--average-ms averaged, and every window whose averaged top label is a keyword scoring at "
        "least --threshold is a detection; overlapping detections of one keyword merge into one "
        "event with start and end times. Several files or a folder give a table (or one JSON "
        "document with --json).\n\nWith --sequence the recording is one stream for a stateful "
        "(streaming) model: each invocation takes the next MFCC frames (as many 10-coefficient "
        "frames as the model's input holds), the model's state carries from step to step and is "
        "reset at the start of each file; --average-ms and --threshold apply to the steps "
        "(--stride-ms does not).\n\n" + EXAMPLES,
        func=run,
    )
    p.add_argument("clips", nargs="+", metavar="AUDIO",
                   help="audio files (WAV of any rate/channels, FLAC, Ogg, AIFF) or folders of them")
    add_model_arg(p)
    p.add_argument("--labels", metavar="FILE", help="labels, one per line in output order (default: the 12 DS-CNN labels)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="detection score threshold (0..1)")
    p.add_argument("--stride-ms", type=float, default=DEFAULT_STRIDE_MS,
                   help="window stride on long recordings (a multiple of the 20 ms MFCC frame stride)")
    p.add_argument("--average-ms", type=float, default=DEFAULT_AVERAGE_MS,
                   help="average the posteriors of the windows that start within this span "
                   "(0 or <= stride: no averaging)")
    p.add_argument("--sequence", action="store_true",
                   help="stream each recording through a stateful model, its next MFCC frames per "
                   "invocation, state carried (reset per file)")
    p.add_argument("--report", metavar="DIR", help="also write a report (timeline plot of every "
                   "recording longer than 1 s) into this new folder")
    add_backend_args(p)
    add_json_arg(p)


def _document(results, resolved) -> dict:
    return {"model": str(resolved.path), "model_provenance": resolved.provenance,
            "model_sha256": resolved.sha256, "count": len(results),
            "results": [r.to_dict() for r in results]}


def run(args) -> int:
    from ..classify import Detector, classify_files, classify_stream, collect_audio
    from ..labels import load_labels

    detector = Detector(args.threshold, args.stride_ms, args.average_ms)
    files = collect_audio(args.clips)
    labels = load_labels(args.labels) if args.labels else None
    resolved, backend = open_backend(args)
    with backend_stdout():
        classify = classify_stream if args.sequence else classify_files
        results = classify(files, backend, labels=labels, detector=detector, model_sha256=resolved.sha256)
    doc = _document(results, resolved)
    if args.report:
        from ..report.kws import write_kws_report

        write_kws_report({"detection": doc}, args.report)
    single = len(args.clips) == 1 and len(results) == 1 and not _is_dir(args.clips[0])
    if args.json:
        if single:  # one clip: its own document, as before
            d = results[0].to_dict()
            d["model"] = str(resolved.path)
            d["model_provenance"] = resolved.provenance
            print_json(d)
        else:
            print_json(doc)
        return 0
    if single:
        _print_one(results[0], resolved)
    else:
        _print_table(results, resolved)
    if args.report:
        print(f"report: {args.report}")
    return 0


def _is_dir(path: str) -> bool:
    from pathlib import Path

    return Path(path).is_dir()


def _print_one(r, resolved) -> None:
    best = r.best
    print(f"{r.clip}: {best.label} ({best.score:.3f})  [{resolved.path.name} on {r.backend}]")
    print("  top 3     " + ", ".join(f"{t['label']} {t['score']:.3f}" for t in best.top))
    if r.audio is not None and r.audio.conversion:
        print(f"  audio     {r.audio.encoding}, {r.audio.conversion}")
    if r.step is not None:
        avg = r.step.average_steps(r.detector)
        print(f"  sequence  {len(r.windows)} steps of {r.step.frames} frames ({r.step.seconds * 1e3:g} ms) "
              f"over {r.duration_s:.2f} s, state carried" + (f", posteriors averaged over {avg} steps" if avg > 1 else ""))
        _print_events(r)
    elif len(r.windows) > 1:
        stride = r.detector.stride_samples / 16000
        avg = r.detector.average_windows
        print(f"  windows   {len(r.windows)} of 1 s every {stride:g} s over {r.duration_s:.2f} s"
              + (f", posteriors averaged over {avg} windows" if avg > 1 else ""))
        _print_events(r)
    elif best.score < r.threshold:
        print(f"  (score below the threshold {r.threshold})")


def _print_events(r) -> None:
    unit = "steps" if r.step is not None else "windows"
    if r.events:
        for e in r.events:
            print(f"  {e.start_s:7.2f} s  {e.label} ({e.score:.3f})  until {e.end_s:.2f} s"
                  + (f", {e.windows} {unit}" if e.windows > 1 else ""))
    else:
        print(f"  no keyword scored at or above {r.threshold}")


def _print_table(results, resolved) -> None:
    rows = []
    for r in results:
        long = len(r.windows) > 1 or r.step is not None
        events = ", ".join(f"{e.label}@{e.start_s:g}-{e.end_s:g}s" for e in r.events) if long else ""
        rows.append((str(r.clip), r.best.label, f"{r.best.score:.3f}", f"{r.duration_s:.2f}",
                     str(len(r.windows)), events or "-",
                     r.audio.conversion if r.audio and r.audio.conversion else "-"))
    head = ("file", "label", "score", "duration_s", "windows", "events", "audio")
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print(f"{len(results)} files, {resolved.path.name} on {results[0].backend}")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
