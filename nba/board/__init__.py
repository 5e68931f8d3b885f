"""The steering board: the pages marketers and supervisors read offer performance and steer with."""
