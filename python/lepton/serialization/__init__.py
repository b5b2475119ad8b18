"""The parts of lepton.save / lepton.load (lepton/io.py): the safetensors container, the JSON
skeleton of an object, tensors and arrays as raw bytes, map_location, and the way back from a file."""
