"""The harness the tests and the benchmarks share: JACK servers and listeners, OSC as a sender writes
it, note matching, a headless browser. A benchmark depends on this, never on the test suite's
internals; it is not part of the installed package (a performer's rig does not need it)."""
