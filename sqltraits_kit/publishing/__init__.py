"""Publishing: the Segment client (``segment``) and the sync engine (``sync``). May import the
trait side (trait sets, contract, drift), never modelling."""
