"""FPGA flow for lowbit designs: targets, a pin-count wrapper, Yosys/nextpnr runs, reports.

* :mod:`fpga.targets` — :class:`Target`, ``TARGETS``, :func:`get_target`.
* :mod:`fpga.wrapper` — :class:`PinWrapper` (serial-in / XOR-out shell for any component).
* :mod:`fpga.flow` — :func:`synthesize`, :class:`ToolError`, :func:`format_table`.
* :mod:`fpga.report` — :class:`SynthReport` and the parsing/rendering behind it.
* :mod:`fpga.package` — IP packages; :mod:`fpga.layout` describes stream payloads field by
  field for them, :mod:`fpga.axis` writes their AXI4-Stream shells.

Submodules are not imported here, so ``import fpga`` stays cheap.
"""
