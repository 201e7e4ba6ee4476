"""What tokens mean as music: tunes, the token-to-note rules, bar counting, the ABC reader and
phrasing (when and how loud each note is played). Knows nothing of the network or of devices."""
