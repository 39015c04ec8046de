"""Training on several devices or workers with ``tf.distribute``: the cluster and each worker's
share of the data (:mod:`.cluster`, no TensorFlow), the strategy and lost-worker errors
(:mod:`.strategy`)."""
