"""``ethos-kws features CLIP.wav``: the DS-CNN MFCC features of a clip, float32 (49, 10)."""

from __future__ import annotations

import numpy as np

from .common import add_command, add_json_arg, print_json


def register(sub) -> None:
    p = add_command(
        sub, "features",
        help="MFCC features of a WAV clip (the DS-CNN front end), float32 (49, 10)",
        description="Compute the features the ML-zoo DS-CNN models were trained on (TensorFlow's "
        "audio_spectrogram + mfcc: 40 ms Hann windows every 20 ms, 40 mel channels 20-4000 Hz, "
        "log, 10 DCT coefficients) from the first second of an audio file (resampled to 16 kHz mono when needed); shorter "
        "clips are zero-padded.",
        func=run,
    )
    p.add_argument("clip", metavar="CLIP.wav", help="audio file: WAV (any rate, channels), or FLAC/Ogg/AIFF via soundfile; "
                   "resampled to 16 kHz mono with soxr when needed")
    p.add_argument("--out", metavar="F.npy", help="write the features here (float32 (49, 10))")
    add_json_arg(p)


def run(args) -> int:
    from ..audio import CLIP_SAMPLES, SAMPLE_RATE_HZ, features, read_wav, wav_info
    from ..errors import UserError
    from ..fsutil import atomic_save_npy

    if args.out and not args.out.endswith(".npy"):
        raise UserError(f"--out must name a .npy file, got {args.out}")
    info = wav_info(args.clip)
    feats = features(read_wav(args.clip, max_samples=CLIP_SAMPLES))
    if args.out:
        atomic_save_npy(args.out, feats)
    used_s = min(info.num_samples, CLIP_SAMPLES) / SAMPLE_RATE_HZ
    if args.json:
        print_json({
            "clip": args.clip, "sample_rate_hz": info.source_rate_hz, "encoding": info.encoding,
            "channels": info.source_channels, "resampled": info.resampled,
            "downmixed": info.downmixed, "conversion": info.conversion,
            "duration_s": info.duration_s, "used_s": used_s, "shape": list(feats.shape),
            "dtype": str(feats.dtype), "out": args.out, "features": feats.tolist(),
        })
        return 0
    print(f"{args.clip}: {info.encoding}, {info.source_rate_hz} Hz, {info.duration_s:.3f} s"
          + (f" ({info.conversion})" if info.conversion else "")
          + (f" (features of the first {used_s:.3f} s)" if info.num_samples > CLIP_SAMPLES else "")
          + (" (zero-padded to 1 s)" if info.num_samples < CLIP_SAMPLES else ""))
    print(f"features {feats.dtype} {feats.shape}, min {feats.min():.3f}, max {feats.max():.3f}")
    if args.out:
        print(f"wrote {args.out}")
    else:
        with np.printoptions(precision=3, suppress=True, linewidth=110, threshold=1000):
            print(feats)
    return 0
