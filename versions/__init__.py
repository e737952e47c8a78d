"""Model versions, end to end; the contract is docs/VERSIONS.md.

- :mod:`~learnrec.versions.registry`: the state in Redis (current, preparing, published, leases)
  and every change of it: register, begin / finish / abort a publish, roll back, discard, prune;
- :mod:`~learnrec.versions.publish`: the one re-projection loop every publish runs;
- :mod:`~learnrec.versions.export`: a trained torch model or checkpoint becomes a version (torch);
- :mod:`~learnrec.versions.bootstrap`: the version that serves before any trained one;
- :mod:`~learnrec.versions.record`: the durable record a wiped Redis is restored from;
- :mod:`~learnrec.versions.towers`: a version's metadata and ONNX towers, loaded;
- :mod:`~learnrec.versions.cache`: the towers a stream worker keeps loaded.

The stream workers, the trainer, serving and the CLI call these; none of them copies any of it.
"""
