"""Expected trajectories learned from the network's own data (issue 18): the model's schema
(``model``), the fit (``fit``), reading feedback records in the replay format (``read``) and
``rapport trajectories fit`` (``command``). See docs/trajectories.md."""
