"""What tokens mean as music: tunes, the token-to-note rules, bar counting, the ABC reader and
phrasing (when and how loud each note is played), and the way back: a musician's notes written as
tokens (``transcribe``, with ``keys`` and ``spelling``). Knows nothing of the network or of devices."""
