"""The live instrument: the parameter registry, steering, the just-in-time composer, the model
thread (engine), a performance put together, the offline performance (render) and the view. The
timing thread it runs on is ``instrument.timing``, below it and the outputs."""
