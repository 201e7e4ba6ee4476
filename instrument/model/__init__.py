"""The network and everything that steps it: the vocabulary, the folk-rnn v2 LSTM, the live
stepper with its compiled fast path, checkpoints (ours and the original's) and offline generation."""
