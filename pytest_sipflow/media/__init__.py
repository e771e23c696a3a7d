"""Media truth without pjsua2: E-model MOS, per-call RTP statistics, ``expectMedia`` checks
and analysis of recorded audio (tones, silence, in-band DTMF).

Pure Python: nothing here imports pytest, pjsua2 or the engine, so every module is
unit-tested on plain numbers and generated WAV files.
"""
