"""The live instrument: the parameter registry, steering, the just-in-time composer, the model
thread (engine), the timing thread (scheduler), a performance put together, render and the view."""
