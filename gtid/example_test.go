package gtid_test

import (
	"fmt"

	"github.com/flowdba/flow/gtid"
)

func ExampleParse() {
	// As SHOW REPLICA STATUS prints it, in any order and case.
	s, err := gtid.Parse("4D22AB58-82DB-22F2-AF44-D91BBB53A673:1-3,\n3e11fa47-71ca-11e1-9e33-c80aa9429562:7:1-5:6:Batch:1-2")
	if err != nil {
		panic(err)
	}
	fmt.Println(s)
	fmt.Println(s.Count())
	// Output:
	// 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-7:batch:1-2,
	// 4d22ab58-82db-22f2-af44-d91bbb53a673:1-3
	// 12
}

func ExampleSet_Subtract() {
	primary := gtid.MustParse("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-100")
	replica := gtid.MustParse("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-90:95")
	fmt.Printf("missing on the replica: %s\n", primary.Subtract(replica))
	fmt.Println("replica caught up:", replica.Contains(primary))
	// Output:
	// missing on the replica: 3e11fa47-71ca-11e1-9e33-c80aa9429562:91-94:96-100
	// replica caught up: false
}

func ExampleSubtractStrings() {
	d, err := gtid.SubtractStrings("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-4")
	fmt.Printf("%q %v\n", d, err)
	_, err = gtid.SubtractStrings("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10", "3e11fa47-71ca-11e1-9e33-c80aa9429562:9-2")
	fmt.Println(err)
	// Output:
	// "3e11fa47-71ca-11e1-9e33-c80aa9429562:5-10" <nil>
	// gtid: bad interval "9-2" at offset 37 in "3e11fa47-71ca-11e1-9e33-c80aa9429562:9-2": end is before start
}
