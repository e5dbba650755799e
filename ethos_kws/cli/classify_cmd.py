"""``ethos-kws classify CLIP.wav``: keyword spotting on a WAV file with any backend."""

from __future__ import annotations

from .common import add_command, add_json_arg, add_model_arg, print_json
from .run_cmd import add_backend_args, backend_stdout, open_backend


def register(sub) -> None:
    from ..classify import DEFAULT_THRESHOLD

    p = add_command(
        sub, "classify",
        help="classify a WAV clip (MFCC front end + model): label, score, top 3",
        description="Compute the MFCC features of a 16 kHz mono WAV file and run the model. A clip "
        "of up to 1 s gives its label, score and top 3. A longer recording is scanned with a 1 s "
        "window every 0.5 s; every window whose top label is a keyword scoring at least "
        "--threshold is reported with its time.",
        func=run,
    )
    p.add_argument("clip", metavar="CLIP.wav", help="16 kHz mono WAV file")
    add_model_arg(p)
    p.add_argument("--labels", metavar="FILE", help="labels, one per line in output order (default: the 12 DS-CNN labels)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="detection score threshold (0..1)")
    add_backend_args(p)
    add_json_arg(p)


def run(args) -> int:
    from ..classify import classify_wav
    from ..labels import load_labels

    labels = load_labels(args.labels) if args.labels else None
    resolved, backend = open_backend(args)
    with backend_stdout():
        r = classify_wav(args.clip, backend, labels=labels, threshold=args.threshold,
                         model_sha256=resolved.sha256)
    if args.json:
        d = r.to_dict()
        d["model"] = str(resolved.path)
        d["model_provenance"] = resolved.provenance
        print_json(d)
        return 0
    best = r.best
    print(f"{args.clip}: {best.label} ({best.score:.3f})  [{resolved.path.name} on {r.backend}]")
    print("  top 3     " + ", ".join(f"{lab} {s:.3f}" for lab, s in best.top))
    if r.audio is not None and r.audio.conversion:
        print(f"  audio     {r.audio.encoding}, {r.audio.conversion}")
    if len(r.windows) > 1:
        print(f"  windows   {len(r.windows)} of 1 s every 0.5 s over {r.duration_s:.2f} s")
        if r.detections:
            for w in r.detections:
                print(f"  {w.start_s:7.2f} s  {w.label} ({w.score:.3f})")
        else:
            print(f"  no keyword scored at or above {r.threshold}")
    elif best.score < r.threshold:
        print(f"  (score below the threshold {r.threshold})")
    return 0
