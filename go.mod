module chatbridge

go 1.26.8
