"""Programming a trained network onto crossbar arrays as one bench (or simulator) session.

`xbarlab program-network NET --config S.yaml --out F.h5` maps a network's layers onto tiles of
the configured arrays (`mapping`), programs every device with write-verify through the run
engine, reads the arrays back, evaluates the network through the crossbars' MVM
(`inference`), and optionally re-tunes it chip-in-the-loop (`compensation`); `session` runs it
all as one logged, interruptible, resumable protocol run. No module here imports torch
(a torch state dict is loaded by `xbarlab.nn.network_io`, which the CLI calls for .pt files).
"""
