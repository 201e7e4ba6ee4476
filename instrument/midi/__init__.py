"""MIDI transport shared by the MIDI output and the MIDI inputs: choosing an API, opening ports."""
