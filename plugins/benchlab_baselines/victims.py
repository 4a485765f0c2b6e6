"""(being written)"""

ALL: list = []
