"""Hardware behaviours inferred from experiments, each behind a named switch.

The defaults are the choices that make Vela's streams (both compilers) match LiteRT's reference
kernels; the tests show that flipping any one of them breaks at least one case.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Behaviours:
    # A MUL of 32-bit IFMs applies only the shift of OFM_SCALE; its multiplier is ignored (also
    # when the OFM is 8-bit: the last MUL of Vela's legacy SQUARED_DIFFERENCE).
    # (U85 too: test_npusim_u85.test_inferred_behaviours_hold_on_u85, like the next two marked U85.)
    mul32_shift_only: bool = True
    # Zero points of 32-bit IFMs/OFMs are ignored unless the clip range forces 8/16 bit (LUT case).
    ignore_zp_on_32bit: bool = True
    # ACTIVATION_MIN/MAX do not clamp a 32-bit OFM when the clip range is OFM_PRECISION (Vela
    # leaves them at the int16 range; the softmax's int32 intermediates need the full range).
    minmax_no_clamp_32bit: bool = True
    # LRELU multiplies only the negative elements, by OFM_SCALE (alpha); the others pass
    # unscaled. Vela emits LRELU only for int16 with equal IFM/OFM scales, alpha in OFM_SCALE and
    # no OPA_SCALE (False: OPA_SCALE is alpha and OFM_SCALE rescales every element).
    lrelu_alpha_in_ofm_scale: bool = True
    # A LUT is indexed by the clamped int8 value + 128 (not by its raw byte). U85 too.
    lut_index_plus_128: bool = True
    # A padded AVERAGE pool divides by the number of valid elements and rounds half away from
    # zero, whatever OFM_PRECISION's rounding mode says (False: half up). U85: every AVERAGE pool.
    padded_avg_round_away: bool = True
    # NOT a hardware behaviour: LiteRT's FULLY_CONNECTED rounds once (half up) where the NPU's TFL
    # mode, like TFLite's reference CONV, rounds twice. True rounds a CONV whose IFM, kernel and OFM
    # are all 1x1 (an FC) like LiteRT, to diagnose parity differences. Off by default.
    litert_fc_rounding: bool = False


DEFAULT = Behaviours()
