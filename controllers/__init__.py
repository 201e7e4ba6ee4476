"""Inputs that steer the engine from outside: OSC, MIDI and gesture controllers, the mapping layer."""
