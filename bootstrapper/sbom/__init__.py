"""Software bills of materials: the index's (:mod:`.index`) and each wheel's (:mod:`.wheel`)."""
