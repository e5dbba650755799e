"""Native int16 SIGMOID and TANH (``ACTIVATION`` function 4 and 3): the activation unit after the
output rescale, used by Vela for int16 LOGISTIC/TANH and inside every UNIDIRECTIONAL_SEQUENCE_LSTM.

Vela programs the rescale so that the activation unit sees the input in units of 1/0x3000 (3 x
4096: OFM_SCALE is 3 << s for an input scale of 2^-(12+s), else a 15-bit multiplier), exactly the
``input_multiplier``/``input_left_shift`` of TFLite's int16 reference kernels. The unit then
interpolates TFLite's 256-entry sigmoid table (step 1/24) (index = |v| >> 9 for sigmoid; tanh(x) =
2 sigmoid(2x) - 1, so index = |v| >> 8) and returns Q0.15. The interpolation and rounding are
checked exhaustively (all 65536 int16 inputs) against TFLite
Micro's int16 LOGISTIC and TANH in the tests.
"""

from __future__ import annotations

import numpy as np

# sigmoid(i / 24) in Q0.16 for i = 0..255: the table of TFLite's int16 LOGISTIC/TANH reference
# kernels (``sigmoid_table_uint16``, TensorFlow Lite, Apache-2.0; the same table ships in Arm's
# CMSIS-NN ``arm_nntables.c`` v2.1.0, 28 Oct 2022). It is data, not a formula: 44 entries are one
# above round(65536 * sigmoid(i / 24)), so it is quoted rather than recomputed.
SIGMOID_TABLE = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794,
    41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443,
    48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169, 53581, 53983, 54374,
    54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544,
    58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279,
    61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990,
    63090, 63186, 63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030,
    64090, 64148, 64204, 64257, 64308, 64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652,
    64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019,
    65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234,
    65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360,
    65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476,
    65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498, 65500, 65501,
    65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516,
    65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529,
    65529, 65530, 65530, 65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532,
    65532, 65532, 65532, 65533, 65533, 65533, 65533, 65533, 65533, 65533, 65533, 65534, 65534,
    65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535
], dtype=np.int64)


def _interpolate(mag: np.ndarray, frac_bits: int) -> np.ndarray:
    """Table value at |v| / 2^frac_bits, linearly interpolated, scaled by 2^frac_bits; saturated
    beyond the table."""
    idx = mag >> frac_bits
    inside = idx < 255
    i = np.minimum(idx, 254)
    ua, ub = SIGMOID_TABLE[i], SIGMOID_TABLE[i + 1]
    frac = mag & ((1 << frac_bits) - 1)
    return np.where(inside, (ua << frac_bits) + frac * (ub - ua), np.int64(0xFFFF) << frac_bits)


def sigmoid_q15(v: np.ndarray) -> np.ndarray:
    """v: int64 in units of 1/0x3000. Returns sigmoid in Q0.15 (0..32767)."""
    v = np.asarray(v, dtype=np.int64)
    mag = np.abs(v)
    r = np.where((mag >> 9) >= 255, np.int64(0x7FFF) << 10, _interpolate(mag, 9))  # saturated
    r = np.where(v >= 0, r + (1 << 9), (1 << (16 + 9)) - r + (1 << 9) - 1)
    return r >> 10


def tanh_q15(v: np.ndarray) -> np.ndarray:
    """v: int64 in units of 1/0x3000. Returns tanh in Q0.15 (-32768..32767)."""
    v = np.asarray(v, dtype=np.int64)
    r = _interpolate(np.abs(v), 8)
    r = np.where(v >= 0, r - (1 << (14 + 9)) + (1 << (9 - 2)), -r + (1 << (14 + 9)) + (1 << (9 - 2)) - 1)
    return r >> (9 - 1)
