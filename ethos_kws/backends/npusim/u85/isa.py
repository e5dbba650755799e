"""The Ethos-U85 command set: opcodes, parameter fields and enum labels.

Written from the register interface of regor's ``architecture/ethosu85`` (Vela 5.2.0). The word
format is U55's (``[9:0]`` opcode, ``[15:14]`` 0 = cmd0 / 1 = cmd1 with one payload word,
``[31:16]`` param) but the opcode map, several field layouts and the enums differ: rounding moved
from OFM_PRECISION into OFM_SCALE's param, ADD/SUB operand scaling is IFM_SCALE/IFM2_SCALE (no
OPA/OPB), the scalar operand is the 32-bit OP_SCALAR, ACTIVATION names LUT element types, and
there are new registers for chaining (``*_PRECISION`` storage), accumulator source (ACC_FORMAT),
resize, weight format, four weight streams and indexed DMA.
"""

from __future__ import annotations

CMD0: dict[int, str] = {
    0x000: "NPU_OP_STOP", 0x001: "NPU_OP_IRQ", 0x002: "NPU_OP_CONV", 0x003: "NPU_OP_DEPTHWISE",
    0x005: "NPU_OP_POOL", 0x006: "NPU_OP_ELEMENTWISE", 0x007: "NPU_OP_RESIZE",
    0x010: "NPU_OP_DMA_START", 0x011: "NPU_OP_DMA_WAIT", 0x012: "NPU_OP_KERNEL_WAIT",
    0x013: "NPU_OP_PMU_MASK",
    0x100: "NPU_SET_IFM_PAD_TOP", 0x101: "NPU_SET_IFM_PAD_LEFT", 0x102: "NPU_SET_IFM_PAD_RIGHT",
    0x103: "NPU_SET_IFM_PAD_BOTTOM", 0x104: "NPU_SET_IFM_DEPTH_M1", 0x105: "NPU_SET_IFM_PRECISION",
    0x107: "NPU_SET_IFM_UPSCALE", 0x108: "NPU_SET_IFM_BROADCAST", 0x109: "NPU_SET_IFM_ZERO_POINT",
    0x10A: "NPU_SET_IFM_WIDTH0_M1", 0x10B: "NPU_SET_IFM_HEIGHT0_M1", 0x10C: "NPU_SET_IFM_HEIGHT1_M1",
    0x10F: "NPU_SET_IFM_REGION",
    0x111: "NPU_SET_OFM_WIDTH_M1", 0x112: "NPU_SET_OFM_HEIGHT_M1", 0x113: "NPU_SET_OFM_DEPTH_M1",
    0x114: "NPU_SET_OFM_PRECISION", 0x115: "NPU_SET_OFM_BLK_WIDTH_M1",
    0x116: "NPU_SET_OFM_BLK_HEIGHT_M1", 0x117: "NPU_SET_OFM_BLK_DEPTH_M1",
    0x118: "NPU_SET_OFM_ZERO_POINT", 0x11A: "NPU_SET_OFM_WIDTH0_M1", 0x11B: "NPU_SET_OFM_HEIGHT0_M1",
    0x11C: "NPU_SET_OFM_HEIGHT1_M1", 0x11F: "NPU_SET_OFM_REGION",
    0x120: "NPU_SET_KERNEL_WIDTH_M1", 0x121: "NPU_SET_KERNEL_HEIGHT_M1", 0x122: "NPU_SET_KERNEL_STRIDE",
    0x124: "NPU_SET_ACC_FORMAT", 0x125: "NPU_SET_ACTIVATION", 0x126: "NPU_SET_ACTIVATION_MIN",
    0x127: "NPU_SET_ACTIVATION_MAX", 0x128: "NPU_SET_WEIGHT_REGION", 0x129: "NPU_SET_SCALE_REGION",
    0x12A: "NPU_SET_RESIZE_X_SCALE_N_M1", 0x12B: "NPU_SET_RESIZE_Y_SCALE_N_M1",
    0x12C: "NPU_SET_RESIZE_X_OFFSET", 0x12D: "NPU_SET_RESIZE_Y_OFFSET", 0x12E: "NPU_SET_WEIGHT_FORMAT",
    0x12F: "NPU_SET_BLOCKDEP",
    0x130: "NPU_SET_DMA0_SRC_REGION", 0x131: "NPU_SET_DMA0_DST_REGION", 0x132: "NPU_SET_DMA0_SIZE0",
    0x133: "NPU_SET_DMA0_SIZE1", 0x134: "NPU_SET_DMA0_IDX_REGION",
    0x180: "NPU_SET_IFM2_BROADCAST", 0x185: "NPU_SET_IFM2_PRECISION", 0x189: "NPU_SET_IFM2_ZERO_POINT",
    0x18A: "NPU_SET_IFM2_WIDTH0_M1", 0x18B: "NPU_SET_IFM2_HEIGHT0_M1", 0x18C: "NPU_SET_IFM2_HEIGHT1_M1",
    0x18F: "NPU_SET_IFM2_REGION",
}

CMD1: dict[int, str] = {
    0x000: "NPU_SET_IFM_BASE0", 0x001: "NPU_SET_IFM_BASE1", 0x002: "NPU_SET_IFM_BASE2",
    0x003: "NPU_SET_IFM_BASE3", 0x004: "NPU_SET_IFM_STRIDE_X", 0x005: "NPU_SET_IFM_STRIDE_Y",
    0x006: "NPU_SET_IFM_STRIDE_C",
    0x010: "NPU_SET_OFM_BASE0", 0x011: "NPU_SET_OFM_BASE1", 0x012: "NPU_SET_OFM_BASE2",
    0x013: "NPU_SET_OFM_BASE3", 0x014: "NPU_SET_OFM_STRIDE_X", 0x015: "NPU_SET_OFM_STRIDE_Y",
    0x016: "NPU_SET_OFM_STRIDE_C",
    0x020: "NPU_SET_WEIGHT_BASE", 0x021: "NPU_SET_WEIGHT_LENGTH", 0x022: "NPU_SET_SCALE_BASE",
    0x023: "NPU_SET_SCALE_LENGTH", 0x024: "NPU_SET_OFM_SCALE", 0x025: "NPU_SET_IFM_SCALE",
    0x026: "NPU_SET_IFM2_SCALE", 0x027: "NPU_SET_OP_SCALAR",
    0x030: "NPU_SET_DMA0_SRC", 0x031: "NPU_SET_DMA0_DST", 0x032: "NPU_SET_DMA0_LEN",
    0x033: "NPU_SET_DMA0_SRC_STRIDE0", 0x034: "NPU_SET_DMA0_SRC_STRIDE1",
    0x035: "NPU_SET_DMA0_DST_STRIDE0", 0x036: "NPU_SET_DMA0_DST_STRIDE1", 0x037: "NPU_SET_DMA0_IDX",
    0x038: "NPU_SET_DMA0_IDX_MAX", 0x039: "NPU_SET_DMA0_IDX_SKIP1",
    0x080: "NPU_SET_IFM2_BASE0", 0x081: "NPU_SET_IFM2_BASE1", 0x082: "NPU_SET_IFM2_BASE2",
    0x083: "NPU_SET_IFM2_BASE3", 0x084: "NPU_SET_IFM2_STRIDE_X", 0x085: "NPU_SET_IFM2_STRIDE_Y",
    0x086: "NPU_SET_IFM2_STRIDE_C",
    0x090: "NPU_SET_WEIGHT1_BASE", 0x091: "NPU_SET_WEIGHT1_LENGTH", 0x092: "NPU_SET_WEIGHT2_BASE",
    0x093: "NPU_SET_WEIGHT2_LENGTH", 0x094: "NPU_SET_WEIGHT3_BASE", 0x095: "NPU_SET_WEIGHT3_LENGTH",
    0x096: "NPU_SET_RESIZE_X_STEP", 0x097: "NPU_SET_RESIZE_Y_STEP",
    0x100: "NPU_OP_BRANCH",
}

OPERATIONS = frozenset(n for n in CMD0.values() if n.startswith("NPU_OP_"))

# Fields of the 16-bit param: command -> ((field, lsb, width), ...). Commands not listed have one
# field "param" of 16 bits (sizes, _M1 values, zero points, pads).
_PRECISION_IN = (("activation_type", 0, 1), ("activation_precision", 2, 2),
                 ("activation_format", 6, 2), ("activation_storage", 14, 2))
_ADDR = (("addr_hi", 0, 8),)
_SCALE = (("shift", 0, 6), ("dbl_rnd", 6, 5), ("round_mode", 13, 3))
_DMA_REGION = (("region", 0, 3), ("region_mode", 8, 1), ("stride_mode", 9, 2), ("idx_mode", 11, 1))
PARAM_FIELDS: dict[str, tuple[tuple[str, int, int], ...]] = {
    "NPU_OP_STOP": (("mask", 0, 16),),
    "NPU_OP_IRQ": (("mask", 0, 16),),
    "NPU_OP_CONV": (("weights_ifm2", 0, 1),),
    "NPU_OP_DEPTHWISE": (),
    "NPU_OP_POOL": (("pooling_mode", 0, 3),),
    "NPU_OP_ELEMENTWISE": (("elementwise_mode", 0, 6),),
    "NPU_OP_RESIZE": (("resize_mode", 0, 2),),
    "NPU_OP_DMA_START": (),
    "NPU_OP_DMA_WAIT": (("k", 0, 2),),
    "NPU_OP_KERNEL_WAIT": (("n", 0, 1),),
    "NPU_OP_PMU_MASK": (("enable", 0, 1),),
    "NPU_SET_IFM_PRECISION": _PRECISION_IN,
    "NPU_SET_IFM2_PRECISION": _PRECISION_IN,
    "NPU_SET_OFM_PRECISION": (("activation_type", 0, 1), ("activation_precision", 1, 2),
                              ("activation_format", 6, 2), ("scale_mode", 8, 1),
                              ("activation_reverse", 9, 2), ("activation_transpose", 11, 3),
                              ("activation_storage", 14, 2)),
    "NPU_SET_IFM_UPSCALE": (("mode", 0, 2),),
    "NPU_SET_IFM_BROADCAST": (("broadcast_mode", 0, 4),),
    "NPU_SET_IFM2_BROADCAST": (("broadcast_mode", 0, 4),),
    "NPU_SET_IFM_REGION": (("region", 0, 3),),
    "NPU_SET_IFM2_REGION": (("region", 0, 3),),
    "NPU_SET_OFM_REGION": (("region", 0, 3),),
    "NPU_SET_WEIGHT_REGION": (("region", 0, 3),),
    "NPU_SET_SCALE_REGION": (("region", 0, 3),),
    "NPU_SET_DMA0_IDX_REGION": (("region", 0, 3),),
    "NPU_SET_KERNEL_STRIDE": (("stride_x_lsb", 0, 1), ("stride_y_lsb", 1, 1), ("weight_order", 2, 1),
                              ("dilation_x", 3, 1), ("dilation_y", 4, 1), ("decomposition", 5, 1),
                              ("stride_x_msb", 6, 1), ("stride_y_msb", 9, 1)),
    "NPU_SET_ACC_FORMAT": (("acc_format", 0, 2), ("acc_input", 4, 2), ("acc_output", 6, 1),
                           ("microblock", 8, 3)),
    "NPU_SET_ACTIVATION": (("activation_function", 0, 5), ("table", 5, 3),
                           ("activation_clip_range", 12, 1)),
    "NPU_SET_WEIGHT_FORMAT": (("weight_format", 0, 1), ("weight_sparsity", 4, 1)),
    "NPU_SET_BLOCKDEP": (("blockdep", 0, 3),),
    "NPU_SET_OFM_BLK_WIDTH_M1": (("width_m1", 0, 7),),
    "NPU_SET_OFM_BLK_HEIGHT_M1": (("height_m1", 0, 7),),
    "NPU_SET_OFM_BLK_DEPTH_M1": (("depth_m1", 0, 10),),
    "NPU_SET_DMA0_SRC_REGION": _DMA_REGION,
    "NPU_SET_DMA0_DST_REGION": (("region", 0, 3), ("region_mode", 8, 1), ("idx_mode", 11, 1)),
    "NPU_SET_OFM_SCALE": _SCALE,
    "NPU_SET_IFM_SCALE": (("shift", 0, 6), ("dbl_rnd", 6, 5), ("round_mode", 13, 1)),
    "NPU_SET_IFM2_SCALE": (("shift", 0, 6), ("dbl_rnd", 6, 5), ("round_mode", 13, 1)),
    "NPU_SET_WEIGHT_LENGTH": (), "NPU_SET_WEIGHT1_LENGTH": (), "NPU_SET_WEIGHT2_LENGTH": (),
    "NPU_SET_WEIGHT3_LENGTH": (), "NPU_SET_SCALE_LENGTH": (), "NPU_SET_OP_SCALAR": (),
    "NPU_SET_DMA0_IDX_MAX": (),
    "NPU_OP_BRANCH": (("branch_cond", 0, 1),),
}
# cmd1 registers whose param carries address bits [39:32]
for _name in CMD1.values():
    if _name not in PARAM_FIELDS and _name != "NPU_SET_RESIZE_X_STEP" and _name != "NPU_SET_RESIZE_Y_STEP":
        PARAM_FIELDS[_name] = _ADDR

# Enum labels: (command, field) -> {value: name}
ACTIVATION_FUNCTION = {0: "LUT_NONE", 1: "LUT_U8_U8", 4: "LUT_S8_S8", 5: "LUT_S8_S16", 7: "LUT_S8_S32",
                       8: "LUT_S16_S16", 9: "LUT_S16_S32", 10: "LUT_TANH", 11: "LUT_SIGMOID"}
ROUND_MODE_OFM = {0: "DOUBLE_SYMMETRIC", 1: "NATURAL", 2: "DOUBLE_ASYMMETRIC", 3: "SYMMETRIC",
                  4: "TRUNCATE_TO_ZERO", 5: "TRUNCATE_TO_LOWER"}
ROUND_MODE_IFM = {0: "DOUBLE_SYMMETRIC", 1: "NATURAL"}
POOLING_MODE = {0: "MAX", 1: "AVERAGE", 2: "REDUCE_SUM", 3: "SUM", 4: "NONE", 5: "MIN", 6: "ARGMAX_X",
                7: "ARGMAX_Y"}
ELEMENTWISE_MODE = {0: "MUL", 1: "ADD", 2: "SUB", 3: "MIN", 4: "MAX", 5: "LRELU", 6: "ABS", 7: "CLZ",
                    8: "SHR", 9: "SHL", 10: "LSR", 11: "DIV", 16: "CMP_EQ", 17: "CMP_NE", 18: "CMP_GE",
                    19: "CMP_GT", 33: "AND", 34: "OR", 35: "XOR", 36: "NOT", 42: "AND_NOT"}
RESIZE_MODE = {0: "BILINEAR", 1: "REPLICATE", 2: "NEAREST"}
BROADCAST_MODE = {0: "NONE", 1: "H", 2: "W", 3: "HW", 4: "C", 5: "CH", 6: "CW", 7: "CWH", 8: "SCALAR"}
STORAGE = {0: "TILE2X2", 1: "TILE3X1", 2: "CHAINED", 3: "NONE"}
MICROBLOCK = {0: "U1X1", 1: "U1X2", 2: "U1X4", 3: "U2X2", 4: "U2X4", 5: "U4X4"}
_PREC = {0: "B8", 1: "B16", 2: "B32", 3: "B64"}
_TYPE = {0: "UNSIGNED", 1: "SIGNED"}
_FORMAT = {0: "NHWC", 1: "NHCWB16"}

ENUM_FIELDS: dict[tuple[str, str], dict[int, str]] = {
    ("NPU_SET_ACTIVATION", "activation_function"): ACTIVATION_FUNCTION,
    ("NPU_SET_ACTIVATION", "activation_clip_range"): {0: "B16", 1: "NONE"},
    ("NPU_SET_OFM_SCALE", "round_mode"): ROUND_MODE_OFM,
    ("NPU_SET_IFM_SCALE", "round_mode"): ROUND_MODE_IFM,
    ("NPU_SET_IFM2_SCALE", "round_mode"): ROUND_MODE_IFM,
    ("NPU_OP_POOL", "pooling_mode"): POOLING_MODE,
    ("NPU_OP_ELEMENTWISE", "elementwise_mode"): ELEMENTWISE_MODE,
    ("NPU_OP_RESIZE", "resize_mode"): RESIZE_MODE,
    ("NPU_SET_IFM_BROADCAST", "broadcast_mode"): BROADCAST_MODE,
    ("NPU_SET_IFM2_BROADCAST", "broadcast_mode"): BROADCAST_MODE,
    ("NPU_SET_ACC_FORMAT", "acc_format"): {0: "I32", 1: "I48"},
    ("NPU_SET_ACC_FORMAT", "acc_input"): {0: "RESET", 1: "KEEP", 2: "IFM2"},
    ("NPU_SET_ACC_FORMAT", "acc_output"): {0: "ENABLE", 1: "DISABLE"},
    ("NPU_SET_ACC_FORMAT", "microblock"): MICROBLOCK,
    ("NPU_SET_WEIGHT_FORMAT", "weight_format"): {0: "SWD", 1: "FWD"},
    ("NPU_SET_WEIGHT_FORMAT", "weight_sparsity"): {0: "NONE", 1: "SPARSE_2_4"},
    ("NPU_SET_KERNEL_STRIDE", "weight_order"): {0: "DEPTH_FIRST", 1: "PART_KERNEL_FIRST"},
    ("NPU_SET_DMA0_SRC_REGION", "region_mode"): {0: "EXTERNAL", 1: "INTERNAL"},
    ("NPU_SET_DMA0_DST_REGION", "region_mode"): {0: "EXTERNAL", 1: "INTERNAL"},
    ("NPU_SET_DMA0_SRC_REGION", "stride_mode"): {0: "D1", 1: "D2", 2: "D3"},
    ("NPU_OP_BRANCH", "branch_cond"): {0: "ALWAYS", 1: "RF_TRUE"},
}
for _cmd in ("NPU_SET_IFM_PRECISION", "NPU_SET_IFM2_PRECISION", "NPU_SET_OFM_PRECISION"):
    ENUM_FIELDS[(_cmd, "activation_type")] = _TYPE
    ENUM_FIELDS[(_cmd, "activation_precision")] = _PREC
    ENUM_FIELDS[(_cmd, "activation_format")] = _FORMAT
    ENUM_FIELDS[(_cmd, "activation_storage")] = STORAGE
ENUM_FIELDS[("NPU_SET_OFM_PRECISION", "scale_mode")] = {0: "PER_CHANNEL", 1: "GLOBAL"}
ENUM_FIELDS[("NPU_SET_OFM_PRECISION", "activation_reverse")] = {0: "NONE", 1: "H", 2: "W", 3: "C"}
ENUM_FIELDS[("NPU_SET_OFM_PRECISION", "activation_transpose")] = {0: "HWC", 1: "WHC", 2: "HCW",
                                                                   3: "WCH", 6: "CHW", 7: "CWH"}

SIGNED_PARAMS = frozenset({"NPU_SET_IFM_ZERO_POINT", "NPU_SET_IFM2_ZERO_POINT", "NPU_SET_OFM_ZERO_POINT",
                           "NPU_SET_ACTIVATION_MIN", "NPU_SET_ACTIVATION_MAX",
                           "NPU_SET_RESIZE_X_OFFSET", "NPU_SET_RESIZE_Y_OFFSET"})
# cmd1 registers whose 32-bit payload is a scale (value printed as multiplier and shift)
SCALE_REGISTERS = frozenset({"NPU_SET_OFM_SCALE", "NPU_SET_IFM_SCALE", "NPU_SET_IFM2_SCALE"})
