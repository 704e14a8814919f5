"""Models: definitions (``models``), the shipped weights and their cards (``store``; files in
``weights/``), training (``train``) and users' own models (``user_models``)."""
