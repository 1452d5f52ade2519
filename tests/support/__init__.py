"""What the test lanes share: fakes, scripted servers and helpers.

Test modules import from here (and take conftest's fixtures), never from each other.
"""
