"""The advisor's insides: the probe of a model on its link (probing.py) and the prediction and
choice it rests on (recommend.py). Its face is ``horovod_ext.advise`` (and ``hvd_ext.probe``)."""
