"""Generated files rendered from stored results, never by re-running attacks: leaderboard pages
(``leaderboard``), the README's blocks (``readme``, ``claims``), the SHIELD report
(``shield_report``) and pictures (``plots``, ``label_placement``)."""
