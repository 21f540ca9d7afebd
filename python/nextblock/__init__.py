"""NextBlock: neural packet-loss concealment for JackTrip.

The package is laid out as the signal flows:

* ``nextblock.capture``   – the shared-memory protocol with patched JackTrip (C++ core ``nextblock._core``)
* ``nextblock.features``  – FFT pre-/post-processing around the network
* ``nextblock.model``     – the 1D CNN (Keras, training side) and its LiteRT runner (runtime side)
* ``nextblock.splice``    – cross-fades between predicted and real audio
* ``nextblock.concealers``– streaming concealers (zeros, repeat, Burg, NextBlock) behind one interface
* ``nextblock.dataset``   – download / sort / verify / package training audio
* ``nextblock.evaluation``– loss patterns, metrics and the evaluation harness
* ``nextblock.runtime``   – ``python -m nextblock.attach``: the live predictor next to JackTrip
* ``nextblock.learning``  – online server-side learning and model publishing
"""

__version__ = "0.1.0"
