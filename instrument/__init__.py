"""folk-instrument: a folk-rnn-style LSTM played live as a musical instrument."""

__version__ = "0.1.0"
