"""Every CPU model name qemu-system-ppc64 7.2 knows, and its aliases.

Only a few of these have an sPAPR core type (see ``cpu_models``); the rest exist
so that ``-cpu 7400`` fails the way QEMU fails ("Unable to find sPAPR CPU Core
definition") rather than as an unknown model. Names are facts read from QEMU's
model list; they carry no behaviour here.
"""

from __future__ import annotations

#: CPU type names (without the "-powerpc64-cpu" suffix), lower case.
KNOWN_CPU_TYPES: frozenset[str] = frozenset(
    """
    405d2 405d4 405cra 405crb 405crc 405ep 405ez 405gpa 405gpb 405gpc 405gpd 405gpr
    405lp npe405h npe405h2 npe405l npe4gs3 stb03 stb04 stb25 x2vp4 x2vp20 440 440-xilinx
    440-xilinx-w-dfpu 440epa 440epb 440epx 460exb 440gpb 440gpc 440gra 440grx 440gxa
    440gxb 440gxc 440gxf 440sp 440sp2 440spe mpc5xx mpc8xx g2 g2h4 g2gp g2ls g2hip3
    g2hip4 mpc603 g2le g2legp g2lels g2legp1 g2legp3 mpc5200_v10 mpc5200_v11 mpc5200_v12
    mpc5200b_v20 mpc5200b_v21 e200z5 e200z6 e300c1 e300c2 e300c3 e300c4 mpc8343 mpc8343a
    mpc8343e mpc8343ea mpc8347t mpc8347p mpc8347at mpc8347ap mpc8347et mpc8347ep
    mpc8347eat mpc8347eap mpc8349 mpc8349a mpc8349e mpc8349ea mpc8377 mpc8377e mpc8378
    mpc8378e mpc8379 mpc8379e e500_v10 e500_v20 e500v2_v10 e500v2_v20 e500v2_v21
    e500v2_v22 e500v2_v30 e500mc e5500 e6500 mpc8533_v10 mpc8533_v11 mpc8533e_v10
    mpc8533e_v11 mpc8540_v10 mpc8540_v20 mpc8540_v21 mpc8541_v10 mpc8541_v11
    mpc8541e_v10 mpc8541e_v11 mpc8543_v10 mpc8543_v11 mpc8543_v20 mpc8543_v21
    mpc8543e_v10 mpc8543e_v11 mpc8543e_v20 mpc8543e_v21 mpc8544_v10 mpc8544_v11
    mpc8544e_v10 mpc8544e_v11 mpc8545_v20 mpc8545_v21 mpc8545e_v20 mpc8545e_v21
    mpc8547e_v20 mpc8547e_v21 mpc8548_v10 mpc8548_v11 mpc8548_v20 mpc8548_v21
    mpc8548e_v10 mpc8548e_v11 mpc8548e_v20 mpc8548e_v21 mpc8555_v10 mpc8555_v11
    mpc8555e_v10 mpc8555e_v11 mpc8560_v10 mpc8560_v20 mpc8560_v21 mpc8567 mpc8567e
    mpc8568 mpc8568e mpc8572 mpc8572e e600 mpc8610 mpc8641 mpc8641d 603 603e_v1.1
    603e_v1.2 603e_v1.3 603e_v1.4 603e_v2.2 603e_v3 603e_v4 603e_v4.1 603e7 603e7t
    603e7v 603e7v1 603e7v2 603p 604 604e_v1.0 604e_v2.2 604e_v2.4 604r 740_v1.0 750_v1.0
    740_v2.0 750_v2.0 740_v2.1 750_v2.1 740_v2.2 750_v2.2 740_v3.0 750_v3.0 740_v3.1
    750_v3.1 740e 750e 740p 750p 750cl_v1.0 750cl_v2.0 750cx_v1.0 750cx_v2.0 750cx_v2.1
    750cx_v2.2 750cxe_v2.1 750cxe_v2.2 750cxe_v2.3 750cxe_v2.4 750cxe_v2.4b 750cxe_v3.0
    750cxe_v3.1 750cxe_v3.1b 750cxr 750fl 750fx_v1.0 750fx_v2.0 750fx_v2.1 750fx_v2.2
    750fx_v2.3 750gl 750gx_v1.0 750gx_v1.1 750gx_v1.2 750l_v2.0 750l_v2.1 750l_v2.2
    750l_v3.0 750l_v3.2 745_v1.0 755_v1.0 745_v1.1 755_v1.1 745_v2.0 755_v2.0 745_v2.1
    755_v2.1 745_v2.2 755_v2.2 745_v2.3 755_v2.3 745_v2.4 755_v2.4 745_v2.5 755_v2.5
    745_v2.6 755_v2.6 745_v2.7 755_v2.7 745_v2.8 755_v2.8 7400_v1.0 7400_v1.1 7400_v2.0
    7400_v2.1 7400_v2.2 7400_v2.6 7400_v2.7 7400_v2.8 7400_v2.9 7410_v1.0 7410_v1.1
    7410_v1.2 7410_v1.3 7410_v1.4 7448_v1.0 7448_v1.1 7448_v2.0 7448_v2.1 7450_v1.0
    7450_v1.1 7450_v1.2 7450_v2.0 7450_v2.1 7441_v2.1 7441_v2.3 7451_v2.3 7441_v2.10
    7451_v2.10 7445_v1.0 7455_v1.0 7445_v2.1 7455_v2.1 7445_v3.2 7455_v3.2 7445_v3.3
    7455_v3.3 7445_v3.4 7455_v3.4 7447_v1.0 7457_v1.0 7447_v1.1 7457_v1.1 7457_v1.2
    7447a_v1.0 7457a_v1.0 7447a_v1.1 7457a_v1.1 7447a_v1.2 7457a_v1.2 970_v2.2
    970fx_v1.0 970fx_v2.0 970fx_v2.1 970fx_v3.0 970fx_v3.1 970mp_v1.0 970mp_v1.1
    power5+_v2.1 power7_v2.3 power7+_v2.1 power8e_v2.1 power8_v2.0 power8nvl_v1.0
    power9_v1.0 power9_v2.0 power10_v1.0 power10_v2.0
    """.split()
)

#: Alias -> CPU type, as QEMU resolves them (after lower-casing the -cpu name).
CPU_ALIASES: dict[str, str] = {
    "405": "405d4",
    "405cr": "405crc",
    "405gp": "405gpd",
    "405gpe": "405crc",
    "x2vp7": "x2vp4",
    "x2vp50": "x2vp20",
    "440ep": "440epb",
    "460ex": "460exb",
    "440gp": "440gpc",
    "440gr": "440gra",
    "440gx": "440gxf",
    "rcpu": "mpc5xx",
    "mgt560": "mpc5xx",
    "mpc509": "mpc5xx",
    "mpc533": "mpc5xx",
    "mpc534": "mpc5xx",
    "mpc555": "mpc5xx",
    "mpc556": "mpc5xx",
    "mpc560": "mpc5xx",
    "mpc561": "mpc5xx",
    "mpc562": "mpc5xx",
    "mpc563": "mpc5xx",
    "mpc564": "mpc5xx",
    "mpc565": "mpc5xx",
    "mpc566": "mpc5xx",
    "powerquicc": "mpc8xx",
    "mgt823": "mpc8xx",
    "mpc821": "mpc8xx",
    "mpc823": "mpc8xx",
    "mpc850": "mpc8xx",
    "mpc852t": "mpc8xx",
    "mpc855t": "mpc8xx",
    "mpc857": "mpc8xx",
    "mpc859": "mpc8xx",
    "mpc860": "mpc8xx",
    "mpc862": "mpc8xx",
    "mpc866": "mpc8xx",
    "mpc870": "mpc8xx",
    "mpc875": "mpc8xx",
    "mpc880": "mpc8xx",
    "mpc885": "mpc8xx",
    "mpc8240": "603",
    "mpc52xx": "mpc5200_v12",
    "mpc5200": "mpc5200_v12",
    "mpc5200b": "mpc5200b_v21",
    "mpc82xx": "g2legp3",
    "powerquicc-ii": "g2legp3",
    "mpc8241": "g2hip4",
    "mpc8245": "g2hip4",
    "mpc8247": "g2legp3",
    "mpc8248": "g2legp3",
    "mpc8250": "g2hip4",
    "mpc8250_hip3": "g2hip3",
    "mpc8250_hip4": "g2hip4",
    "mpc8255": "g2hip4",
    "mpc8255_hip3": "g2hip3",
    "mpc8255_hip4": "g2hip4",
    "mpc8260": "g2hip4",
    "mpc8260_hip3": "g2hip3",
    "mpc8260_hip4": "g2hip4",
    "mpc8264": "g2hip4",
    "mpc8264_hip3": "g2hip3",
    "mpc8264_hip4": "g2hip4",
    "mpc8265": "g2hip4",
    "mpc8265_hip3": "g2hip3",
    "mpc8265_hip4": "g2hip4",
    "mpc8266": "g2hip4",
    "mpc8266_hip3": "g2hip3",
    "mpc8266_hip4": "g2hip4",
    "mpc8270": "g2legp3",
    "mpc8271": "g2legp3",
    "mpc8272": "g2legp3",
    "mpc8275": "g2legp3",
    "mpc8280": "g2legp3",
    "e200": "e200z6",
    "e300": "e300c3",
    "mpc8347": "mpc8347t",
    "mpc8347a": "mpc8347at",
    "mpc8347e": "mpc8347et",
    "mpc8347ea": "mpc8347eat",
    "e500": "e500v2_v22",
    "e500v1": "e500_v20",
    "e500v2": "e500v2_v22",
    "mpc8533": "mpc8533_v11",
    "mpc8533e": "mpc8533e_v11",
    "mpc8540": "mpc8540_v21",
    "mpc8541": "mpc8541_v11",
    "mpc8541e": "mpc8541e_v11",
    "mpc8543": "mpc8543_v21",
    "mpc8543e": "mpc8543e_v21",
    "mpc8544": "mpc8544_v11",
    "mpc8544e": "mpc8544e_v11",
    "mpc8545": "mpc8545_v21",
    "mpc8545e": "mpc8545e_v21",
    "mpc8547e": "mpc8547e_v21",
    "mpc8548": "mpc8548_v21",
    "mpc8548e": "mpc8548e_v21",
    "mpc8555": "mpc8555_v11",
    "mpc8555e": "mpc8555e_v11",
    "mpc8560": "mpc8560_v21",
    "vanilla": "603",
    "603e": "603e_v4.1",
    "stretch": "603e_v4.1",
    "vaillant": "603e7v",
    "603r": "603e7t",
    "goldeneye": "603e7t",
    "604e": "604e_v2.4",
    "sirocco": "604e_v2.4",
    "mach5": "604r",
    "740": "740_v3.1",
    "arthur": "740_v3.1",
    "750": "750_v3.1",
    "typhoon": "750_v3.1",
    "g3": "750_v3.1",
    "conan/doyle": "750p",
    "750cl": "750cl_v2.0",
    "750cx": "750cx_v2.2",
    "750cxe": "750cxe_v3.1b",
    "750fx": "750fx_v2.3",
    "750gx": "750gx_v1.2",
    "750l": "750l_v3.2",
    "lonestar": "750l_v3.2",
    "745": "745_v2.8",
    "755": "755_v2.8",
    "goldfinger": "755_v2.8",
    "7400": "7400_v2.9",
    "g4": "7400_v2.9",
    "7410": "7410_v1.4",
    "nitro": "7410_v1.4",
    "7448": "7448_v2.1",
    "7450": "7450_v2.1",
    "vger": "7450_v2.1",
    "7441": "7441_v2.3",
    "7451": "7451_v2.3",
    "7445": "7445_v3.2",
    "7455": "7455_v3.2",
    "apollo6": "7455_v3.2",
    "7447": "7447_v1.1",
    "7457": "7457_v1.2",
    "apollo7": "7457_v1.2",
    "7447a": "7447a_v1.2",
    "7457a": "7457a_v1.2",
    "apollo7pm": "7457a_v1.0",
    "970": "970_v2.2",
    "970fx": "970fx_v3.1",
    "970mp": "970mp_v1.1",
    "power5+": "power5+_v2.1",
    "power5gs": "power5+_v2.1",
    "power7": "power7_v2.3",
    "power7+": "power7+_v2.1",
    "power8e": "power8e_v2.1",
    "power8": "power8_v2.0",
    "power8nvl": "power8nvl_v1.0",
    "power9": "power9_v2.0",
    "power10": "power10_v2.0",
    "ppc64": "970fx_v3.1",
    "ppc32": "604",
    "ppc": "604",
}
