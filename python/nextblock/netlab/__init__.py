"""The lossy link between a JackTrip client and server.

* ``netns``       – two network namespaces joined by a veth pair (10.213.K.0/30, ours only)
* ``nft_loss``    – random loss with an nftables rule inside a namespace (kernel, unseeded)
* ``netem``       – ``tc netem`` where the kernel has it (detected, reported)
* ``relay``       – our seeded UDP relay: loss (Bernoulli, Gilbert-Elliott, exact list), delay,
  jitter; logs every drop by JackTrip sequence number (``python -m nextblock.netlab.relay``)
* ``impairments`` – the seeded loss/delay models the relay uses
* ``jackheader``  – JackTrip's 16-byte UDP ``DefaultHeader``
* ``link``        – ``LinkSpec``/``LossyLink``: choose and set up one of the above (or JackTrip's
  ``--simloss``) and report which ran

``python -m nextblock.netlab`` prints which paths this machine supports.
"""
